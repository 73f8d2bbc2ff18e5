// HttpError: a loom::Error that knows its HTTP status and OpenAI error fields,
// so a failure anywhere in a handler reaches the client as
// {"error": {"message", "type", "param", "code"}} with the right status.
//
//   throw HttpError(400, "'temperature' must be between 0 and 2", "temperature");
//   res.set_content(error_body(e), "application/json");
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "loom/core/error.h"

namespace loom::serve {

class HttpError : public Error {
 public:
  // `type` and `code` follow OpenAI's values: "invalid_request_error" for a
  // client's mistake, "server_error" for ours; code may be empty (null).
  HttpError(int status, const std::string& message, std::string param = {}, std::string code = {},
            std::string type = {})
      : Error(message), status_(status), param_(std::move(param)), code_(std::move(code)), type_(std::move(type)) {
    if (type_.empty()) type_ = status >= 500 ? "server_error" : "invalid_request_error";
  }

  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_, code_, type_;
};

// The OpenAI error object for `e` (the value of the "error" key's parent).
inline nlohmann::json error_json(const HttpError& e) {
  const auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  return {{"error", {{"message", e.what()}, {"type", e.type()}, {"param", or_null(e.param())}, {"code", or_null(e.code())}}}};
}

// JSON text for the wire. Token text can hold part of a UTF-8 character
// (a logprob entry for one byte of a multi-byte character), which JSON cannot
// carry: such bytes become U+FFFD instead of failing the whole response.
inline std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

inline std::string error_body(const HttpError& e) { return dump(error_json(e)); }

}  // namespace loom::serve
