// Engine events -> OpenAI response objects: `chat.completion` and
// `text_completion` bodies, and the server-sent-event chunks of a stream
// (`chat.completion.chunk` / `text_completion` objects; the first chat chunk
// carries the role, the last one the finish_reason, an optional usage chunk
// with empty choices, then `data: [DONE]`).
//
//   ResponseBuilder rb(job, "chatcmpl-1", time(nullptr));
//   sink(rb.sse_open());
//   for (const auto& ev : events) sink(rb.sse_event(ev));   // after Finished it also closes the stream
//   // or, not streaming: for (ev) rb.add(ev); then rb.body()
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "loom/engine/engine.h"
#include "loom/serve/openai_request.h"

namespace loom::serve {

class ResponseBuilder {
 public:
  ResponseBuilder(const Job& job, std::string id, int64_t created);

  // Streaming. sse_open() is the first chunk (chat: the assistant role;
  // completions: nothing). sse_event() gives the chunks for one event; for
  // the Finished event that is the final chunk, the usage chunk when asked
  // for, and `data: [DONE]`.
  std::string sse_open() const;
  std::string sse_event(const engine::Event& ev);

  // Whole response: add() every event, then body() once finished().
  void add(const engine::Event& ev);
  nlohmann::json body() const;

  bool finished() const { return finished_; }
  // Set when the engine failed the request (FinishReason::Error).
  bool failed() const { return failed_; }
  const engine::Event& final_event() const { return final_; }
  const std::string& text() const { return text_; }
  int64_t tokens() const { return tokens_; }

 private:
  nlohmann::json envelope(const char* object) const;
  nlohmann::json chunk(nlohmann::json choice) const;
  nlohmann::json usage_json() const;
  std::string finish_reason() const;
  void record(const engine::Event& ev);  // text, logprobs, finish state
  nlohmann::json chat_logprob_entry(const engine::Event& ev) const;
  nlohmann::json completion_logprobs(size_t first, size_t last) const;

  Endpoint endpoint_;
  std::string id_, model_;
  int64_t created_;
  bool include_usage_, logprobs_;
  std::string text_;
  int64_t tokens_ = 0;
  nlohmann::json chat_logprobs_ = nlohmann::json::array();
  // Completions' legacy logprobs, one entry per token.
  struct TokenInfo {
    std::string text;
    float logprob;
    std::vector<engine::TokenLogprob> top;
    size_t offset;
  };
  std::vector<TokenInfo> completion_tokens_;
  size_t completion_offset_ = 0;
  bool finished_ = false, failed_ = false;
  engine::Event final_;
};

// "data: <json>\n\n"
std::string sse(const nlohmann::json& j);

}  // namespace loom::serve
