// Engine events -> OpenAI responses: whole bodies and server-sent-event
// chunks, compared with hand-written JSON in the shapes OpenAI's API
// reference gives (chat.completion, chat.completion.chunk, text_completion).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "loom/serve/http_error.h"
#include "loom/serve/openai_response.h"

namespace loom::serve {
namespace {

using nlohmann::json;

engine::Event token(std::string text, int32_t id = 7) {
  engine::Event ev;
  ev.kind = engine::Event::Kind::Token;
  ev.text = std::move(text);
  ev.token = id;
  return ev;
}

engine::Event finished(engine::FinishReason reason, std::string text = "") {
  engine::Event ev;
  ev.kind = engine::Event::Kind::Finished;
  ev.reason = reason;
  ev.text = std::move(text);
  ev.usage = {.prompt_tokens = 3, .cached_prompt_tokens = 1, .completion_tokens = 2};
  return ev;
}

Job job(Endpoint endpoint, bool stream, bool include_usage = false) {
  Job j;
  j.endpoint = endpoint;
  j.model = "stories";
  j.stream = stream;
  j.include_usage = include_usage;
  return j;
}

// Splits "data: {...}\n\n" events; each must be one `data:` line.
std::vector<std::string> sse_payloads(const std::string& stream) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < stream.size()) {
    const size_t end = stream.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event: " << stream.substr(pos);
    if (end == std::string::npos) break;
    const std::string ev = stream.substr(pos, end - pos);
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    EXPECT_EQ(ev.find('\n'), std::string::npos) << ev;
    out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

const json kUsage = json::parse(R"({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
    "prompt_tokens_details": {"cached_tokens": 1}, "completion_tokens_details": {"reasoning_tokens": 0}})");

TEST(ChatResponse, WholeBody) {
  ResponseBuilder rb(job(Endpoint::Chat, false), "chatcmpl-1", 1700000000);
  rb.add(token("Once"));
  rb.add(token(" upon"));
  rb.add(finished(engine::FinishReason::Length));
  ASSERT_TRUE(rb.finished());
  json expected = json::parse(R"({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "stories",
    "system_fingerprint": "loom",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once upon", "refusal": null},
                 "logprobs": null, "finish_reason": "length"}]})");
  expected["usage"] = kUsage;
  EXPECT_EQ(rb.body(), expected);
}

TEST(ChatResponse, StreamChunks) {
  ResponseBuilder rb(job(Endpoint::Chat, true), "chatcmpl-1", 1700000000);
  std::string wire = rb.sse_open();
  wire += rb.sse_event(token("Once"));
  wire += rb.sse_event(token(""));  // held back (a possible stop string): nothing is sent
  wire += rb.sse_event(token(" upon"));
  wire += rb.sse_event(finished(engine::FinishReason::Stop, "!"));
  const auto events = sse_payloads(wire);
  ASSERT_EQ(events.size(), 6u) << wire;
  const std::string head = R"("id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                              "model": "stories", "system_fingerprint": "loom", )";
  EXPECT_EQ(json::parse(events[0]), json::parse("{" + head + R"("choices": [{"index": 0,
      "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}]})"));
  EXPECT_EQ(json::parse(events[1]), json::parse("{" + head + R"("choices": [{"index": 0,
      "delta": {"content": "Once"}, "logprobs": null, "finish_reason": null}]})"));
  EXPECT_EQ(json::parse(events[2]), json::parse("{" + head + R"("choices": [{"index": 0,
      "delta": {"content": " upon"}, "logprobs": null, "finish_reason": null}]})"));
  // Text held back until the end comes before the final chunk.
  EXPECT_EQ(json::parse(events[3]), json::parse("{" + head + R"("choices": [{"index": 0,
      "delta": {"content": "!"}, "logprobs": null, "finish_reason": null}]})"));
  EXPECT_EQ(json::parse(events[4]), json::parse("{" + head + R"("choices": [{"index": 0,
      "delta": {}, "logprobs": null, "finish_reason": "stop"}]})"));
  EXPECT_EQ(events[5], "[DONE]");
}

TEST(ChatResponse, StreamUsageChunk) {
  ResponseBuilder rb(job(Endpoint::Chat, true, true), "chatcmpl-1", 1700000000);
  std::string wire = rb.sse_open();
  wire += rb.sse_event(token("Hi"));
  wire += rb.sse_event(finished(engine::FinishReason::Length));
  const auto events = sse_payloads(wire);
  ASSERT_EQ(events.size(), 5u) << wire;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(json::parse(events[i]).at("usage").is_null()) << events[i];
  EXPECT_EQ(json::parse(events[2])["choices"][0]["finish_reason"], "length");
  json usage = json::parse(R"({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                               "model": "stories", "system_fingerprint": "loom", "choices": []})");
  usage["usage"] = kUsage;
  EXPECT_EQ(json::parse(events[3]), usage);
  EXPECT_EQ(events[4], "[DONE]");
}

TEST(ChatResponse, Logprobs) {
  Job j = job(Endpoint::Chat, false);
  j.logprobs = true;
  j.top_logprobs = 1;
  ResponseBuilder rb(j, "chatcmpl-1", 1700000000);
  engine::Event ev = token("A", 65);
  ev.logprob = engine::TokenLogprob{65, "A", -0.5f};
  ev.top = {{65, "A", -0.5f}};
  rb.add(ev);
  rb.add(finished(engine::FinishReason::Stop));
  EXPECT_EQ(rb.body()["choices"][0]["logprobs"], json::parse(R"({"content": [
      {"token": "A", "logprob": -0.5, "bytes": [65], "top_logprobs": [{"token": "A", "logprob": -0.5, "bytes": [65]}]}],
      "refusal": null})"));
}

TEST(CompletionResponse, WholeBodyWithLogprobs) {
  Job j = job(Endpoint::Completion, false);
  j.logprobs = true;
  j.top_logprobs = 2;
  ResponseBuilder rb(j, "cmpl-1", 1700000000);
  engine::Event a = token("Once", 10);
  a.logprob = engine::TokenLogprob{10, "Once", -0.25f};
  a.top = {{10, "Once", -0.25f}, {11, "Then", -2.0f}};
  engine::Event b = token(" upon", 12);
  b.logprob = engine::TokenLogprob{12, " upon", -0.5f};
  b.top = {{12, " upon", -0.5f}, {13, " a", -1.0f}};
  rb.add(a);
  rb.add(b);
  rb.add(finished(engine::FinishReason::Length));
  json expected = json::parse(R"({
    "id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "stories",
    "system_fingerprint": "loom",
    "choices": [{"text": "Once upon", "index": 0, "finish_reason": "length",
                 "logprobs": {"tokens": ["Once", " upon"], "token_logprobs": [-0.25, -0.5],
                              "top_logprobs": [{"Once": -0.25, "Then": -2.0}, {" upon": -0.5, " a": -1.0}],
                              "text_offset": [0, 4]}}]})");
  expected["usage"] = kUsage;
  EXPECT_EQ(rb.body(), expected);
}

TEST(CompletionResponse, StreamChunks) {
  ResponseBuilder rb(job(Endpoint::Completion, true), "cmpl-1", 1700000000);
  EXPECT_EQ(rb.sse_open(), "");  // completions have no role chunk
  std::string wire = rb.sse_event(token("Once"));
  wire += rb.sse_event(finished(engine::FinishReason::Timeout));
  EXPECT_EQ(rb.sse_event(token("late")), "");  // nothing after the end
  const auto events = sse_payloads(wire);
  ASSERT_EQ(events.size(), 3u) << wire;
  const std::string head = R"("id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "stories",
                              "system_fingerprint": "loom", )";
  EXPECT_EQ(json::parse(events[0]), json::parse("{" + head + R"("choices": [{"text": "Once", "index": 0,
      "logprobs": null, "finish_reason": null}]})"));
  // A request cut off by its time limit ends as if by max_tokens.
  EXPECT_EQ(json::parse(events[1]), json::parse("{" + head + R"("choices": [{"text": "", "index": 0,
      "logprobs": null, "finish_reason": "length"}]})"));
  EXPECT_EQ(events[2], "[DONE]");
}

TEST(Response, EngineFailureIsAServerError) {
  ResponseBuilder rb(job(Endpoint::Chat, true), "chatcmpl-1", 1700000000);
  engine::Event ev = finished(engine::FinishReason::Error);
  ev.error = "out of memory";
  const auto events = sse_payloads(rb.sse_event(ev));
  ASSERT_EQ(events.size(), 2u);
  const json e = json::parse(events[0]);
  EXPECT_EQ(e["error"]["type"], "server_error");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("out of memory"), std::string::npos);
  EXPECT_EQ(events[1], "[DONE]");
  EXPECT_TRUE(rb.failed());
}

TEST(Response, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  ResponseBuilder rb(job(Endpoint::Chat, false), "chatcmpl-1", 1700000000);
  rb.add(token("\xE2\x82"));  // half of "€"
  rb.add(finished(engine::FinishReason::Stop));
  const json parsed = json::parse(dump(rb.body()));
  EXPECT_EQ(parsed["choices"][0]["message"]["content"], "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace loom::serve
