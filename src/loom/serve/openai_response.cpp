#include "loom/serve/openai_response.h"

#include "loom/serve/http_error.h"

namespace loom::serve {

using nlohmann::json;

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

}  // namespace

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

ResponseBuilder::ResponseBuilder(const Job& job, std::string id, int64_t created)
    : endpoint_(job.endpoint),
      id_(std::move(id)),
      model_(job.model),
      created_(created),
      include_usage_(job.include_usage),
      logprobs_(job.logprobs) {}

json ResponseBuilder::envelope(const char* object) const {
  return {{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"system_fingerprint", "loom"}};
}

json ResponseBuilder::chunk(json choice) const {
  json c = envelope(endpoint_ == Endpoint::Chat ? "chat.completion.chunk" : "text_completion");
  c["choices"] = json::array({std::move(choice)});
  if (include_usage_) c["usage"] = nullptr;  // OpenAI: null on every chunk but the usage chunk
  return c;
}

json ResponseBuilder::usage_json() const {
  const auto& u = final_.usage;
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
}

// OpenAI has no reason for a time limit: a timeout ends the answer the way
// max_tokens does ("length"). Cancelled requests have no reader left.
std::string ResponseBuilder::finish_reason() const {
  switch (final_.reason) {
    case engine::FinishReason::Length:
    case engine::FinishReason::Timeout: return "length";
    default: return "stop";
  }
}

json ResponseBuilder::chat_logprob_entry(const engine::Event& ev) const {
  const auto& lp = *ev.logprob;
  json top = json::array();
  for (const auto& t : ev.top) top.push_back({{"token", t.text}, {"logprob", t.logprob}, {"bytes", bytes_of(t.text)}});
  return {{"token", lp.text}, {"logprob", lp.logprob}, {"bytes", bytes_of(lp.text)}, {"top_logprobs", std::move(top)}};
}

json ResponseBuilder::completion_logprobs(size_t first, size_t last) const {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (size_t i = first; i < last; ++i) {
    const auto& t = completion_tokens_[i];
    tokens.push_back(t.text);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& alt : t.top) top[alt.text] = alt.logprob;
    tops.push_back(std::move(top));
    offsets.push_back(t.offset);
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

void ResponseBuilder::record(const engine::Event& ev) {
  text_ += ev.text;
  if (ev.kind == engine::Event::Kind::Token) {
    ++tokens_;
    if (logprobs_ && ev.logprob) {
      if (endpoint_ == Endpoint::Chat) {
        chat_logprobs_.push_back(chat_logprob_entry(ev));
      } else {
        completion_tokens_.push_back({ev.logprob->text, ev.logprob->logprob, ev.top, completion_offset_});
        completion_offset_ += ev.logprob->text.size();
      }
    }
    return;
  }
  finished_ = true;
  failed_ = ev.reason == engine::FinishReason::Error;
  final_ = ev;
}

std::string ResponseBuilder::sse_open() const {
  if (endpoint_ != Endpoint::Chat) return {};
  return sse(chunk({{"index", 0},
                    {"delta", {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}},
                    {"logprobs", nullptr},
                    {"finish_reason", nullptr}}));
}

std::string ResponseBuilder::sse_event(const engine::Event& ev) {
  if (finished_) return {};  // the stream is closed
  const size_t lp_before = endpoint_ == Endpoint::Chat ? chat_logprobs_.size() : completion_tokens_.size();
  record(ev);
  const size_t lp_after = endpoint_ == Endpoint::Chat ? chat_logprobs_.size() : completion_tokens_.size();
  std::string out;
  // A token whose text is held back (a possible stop string, half a
  // character) sends nothing, unless its logprob must be reported.
  if (!ev.text.empty() || lp_after > lp_before) {
    json logprobs = nullptr;
    if (lp_after > lp_before)
      logprobs = endpoint_ == Endpoint::Chat
                     ? json{{"content", json(chat_logprobs_.begin() + long(lp_before), chat_logprobs_.end())},
                            {"refusal", nullptr}}
                     : completion_logprobs(lp_before, lp_after);
    if (endpoint_ == Endpoint::Chat)
      out += sse(chunk(
          {{"index", 0}, {"delta", {{"content", ev.text}}}, {"logprobs", logprobs}, {"finish_reason", nullptr}}));
    else
      out += sse(chunk({{"text", ev.text}, {"index", 0}, {"logprobs", logprobs}, {"finish_reason", nullptr}}));
  }
  if (!finished_) return out;
  if (failed_) {
    // Headers (200) are long gone: OpenAI reports a failure inside a stream as an error event.
    out += sse(error_json(HttpError(500, "[serve] generation failed: " + final_.error, "", "generation_failed")));
  } else {
    if (endpoint_ == Endpoint::Chat)
      out += sse(chunk({{"index", 0}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish_reason()}}));
    else
      out += sse(chunk({{"text", ""}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason()}}));
    if (include_usage_) {
      json u = envelope(endpoint_ == Endpoint::Chat ? "chat.completion.chunk" : "text_completion");
      u["choices"] = json::array();
      u["usage"] = usage_json();
      out += sse(u);
    }
  }
  out += "data: [DONE]\n\n";
  return out;
}

void ResponseBuilder::add(const engine::Event& ev) {
  if (!finished_) record(ev);
}

json ResponseBuilder::body() const {
  if (failed_) return error_json(HttpError(500, "[serve] generation failed: " + final_.error, "", "generation_failed"));
  json choice;
  if (endpoint_ == Endpoint::Chat) {
    choice = {{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text_}, {"refusal", nullptr}}},
              {"logprobs", logprobs_ ? json{{"content", chat_logprobs_}, {"refusal", nullptr}} : json(nullptr)},
              {"finish_reason", finish_reason()}};
  } else {
    choice = {{"text", text_},
              {"index", 0},
              {"logprobs", logprobs_ ? completion_logprobs(0, completion_tokens_.size()) : json(nullptr)},
              {"finish_reason", finish_reason()}};
  }
  json b = envelope(endpoint_ == Endpoint::Chat ? "chat.completion" : "text_completion");
  b["choices"] = json::array({std::move(choice)});
  b["usage"] = usage_json();
  return b;
}

}  // namespace loom::serve
