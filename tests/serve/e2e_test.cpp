// `loom serve` end to end, on the default model (stories260K), over HTTP:
// greedy completions equal `loom run`, streams are shaped as OpenAI's, every
// kind of bad request gets its status and an OpenAI error body, API keys,
// the bounded queue (429), and a client that hangs up, mid-stream or while it
// waits for a whole answer, has its request cancelled and its KV blocks freed.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <thread>

#include "serve/serve_process.h"
#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom::test {
namespace {

using nlohmann::json;

#define NEED_DEFAULT_MODEL()                                                                     \
  do {                                                                                           \
    LOOM_DATA(src_, "models/stories260K.bin");                                                   \
    ASSERT_TRUE(std::filesystem::exists(std::string(LOOM_BINARY_DIR) + "/models/default.gguf")) \
        << "the build makes models/default.gguf";                                                \
  } while (0)

httplib::Result post(httplib::Client& c, const std::string& path, const std::string& body,
                     const httplib::Headers& headers = {}) {
  return c.Post(path.c_str(), headers, body, "application/json");
}

// A response's status, and its body parsed as an OpenAI error (checked shape).
void expect_error(const httplib::Result& r, int status, const std::string& code, const std::string& param = "") {
  ASSERT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r->body;
  EXPECT_TRUE(e["type"].is_string()) << r->body;
  EXPECT_TRUE(e.contains("param")) << r->body;
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << r->body;
  }
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r->body;
  }
}

// The value of `name` (no labels) in Prometheus text, or -1.
double metric(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size() - 1));
}

// Server-sent events of a streamed body: the payload of each `data:` line.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string ev = body.substr(pos, end - pos);
    if (ev.rfind("data: ", 0) == 0) out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

TEST(ServeE2E, GreedyCompletionEqualsLoomRun) {
  NEED_DEFAULT_MODEL();
  const LoomRun run = run_loom({"run", "-p", "Once upon a time", "-n", "60", "--temp", "0", "-t", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_FALSE(run.out.empty());
  const std::string expected = run.out.substr(0, run.out.size() - 1);  // run adds a newline

  ServeProcess s({"--kv-type", "f32"});  // as loom run's cache
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  auto r = post(c, "/v1/completions",
                R"({"model": "default", "prompt": "Once upon a time", "max_tokens": 60, "temperature": 0})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], expected);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);  // BOS + 4 (tok512)
  EXPECT_EQ(j["usage"]["completion_tokens"].get<int>() + 5, j["usage"]["total_tokens"].get<int>());

  // The same, streamed: the chunks' text adds up to the same answer.
  r = post(c, "/v1/completions",
           R"({"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0, "stream": true})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  const auto events = sse_payloads(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "text_completion");
    text += chunk["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(chunk["choices"][0]["finish_reason"].is_null(), i + 2 < events.size()) << events[i];
  }
  EXPECT_EQ(text, expected);

  // And the other endpoints on the same server.
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "default");
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(json::parse(h->body), json({{"status", "ok"}}));
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<script src=\"/app.js\">"), std::string::npos);
  EXPECT_EQ(c.Get("/app.js")->status, 200);
}

TEST(ServeE2E, ChatStreamIsShapedAsOpenAIs) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({});
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  auto r = post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Once upon a time"}],
      "max_tokens": 8, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  // Every event is one "data: ...\n\n"; nothing else but keep-alive comments.
  for (size_t pos = 0; pos < r->body.size();) {
    const size_t end = r->body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    const std::string ev = r->body.substr(pos, end - pos);
    EXPECT_TRUE(ev.rfind("data: ", 0) == 0 || ev[0] == ':') << ev;
    pos = end + 2;
  }
  const auto events = sse_payloads(r->body);
  ASSERT_GE(events.size(), 5u) << r->body;
  const json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "");
  const std::string id = first["id"];
  EXPECT_EQ(id.rfind("chatcmpl-", 0), 0u);
  int content_chunks = 0;
  size_t i = 1;
  for (; i < events.size(); ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["id"], id);
    if (!c["choices"][0]["finish_reason"].is_null()) break;
    EXPECT_TRUE(c["choices"][0]["delta"]["content"].is_string());
    ++content_chunks;
  }
  EXPECT_EQ(content_chunks, 8);  // one per token for plain ASCII words
  ASSERT_EQ(i + 3, events.size());
  EXPECT_EQ(json::parse(events[i])["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(json::parse(events[i])["choices"][0]["delta"], json::object());
  const json usage = json::parse(events[i + 1]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 8);
  EXPECT_EQ(usage["usage"]["prompt_tokens_details"]["cached_tokens"].is_number(), true);
  EXPECT_EQ(events[i + 2], "[DONE]");

  // Tokenize / detokenize (llama.cpp's shapes) round-trip.
  auto t = post(c, "/tokenize", R"({"content": "Once upon a time"})");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200) << t->body;
  const json tokens = json::parse(t->body)["tokens"];
  // The ids `loom tokenize` prints for the same model and text.
  const LoomRun ids = run_loom({"tokenize", "Once upon a time"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  std::vector<int> expected_ids;
  std::istringstream id_stream(ids.out);
  for (int id; id_stream >> id;) expected_ids.push_back(id);
  EXPECT_EQ(tokens, json(expected_ids));
  auto d = post(c, "/detokenize", json({{"tokens", tokens}}).dump());
  ASSERT_TRUE(d);
  EXPECT_EQ(json::parse(d->body), json({{"content", "Once upon a time"}}));
}

TEST(ServeE2E, BadRequestsGetTheirStatusAndAnOpenAIError) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--body-limit", "0.01", "--ctx-size", "512"});  // about 10 KB
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  expect_error(post(c, "/v1/chat/completions", R"({"messages": [)"), 400, "invalid_json");
  expect_error(post(c, "/v1/completions", ""), 400, "invalid_json");
  expect_error(post(c, "/v1/completions", R"({"prompt": "Hi", "max_tokens": "ten"})"), 400, "invalid_type", "max_tokens");
  expect_error(post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "temperature": [1]})"),
               400, "invalid_type", "temperature");
  expect_error(post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "n": 2})"), 400,
               "invalid_value", "n");
  expect_error(post(c, "/v1/completions", R"({"model": "gpt-4", "prompt": "Hi"})"), 404, "model_not_found", "model");
  std::string long_prompt;
  for (int i = 0; i < 700; ++i) long_prompt += " a";  // > 512 tokens (" a" is at least one), < 10 KB
  expect_error(post(c, "/v1/completions", json({{"prompt", long_prompt}}).dump()), 400, "context_length_exceeded");
  expect_error(post(c, "/v1/completions", json({{"prompt", std::string(20000, 'x')}}).dump()), 413,
               "request_too_large");
  expect_error(c.Get("/v1/nothing"), 404, "unknown_url");
  expect_error(post(c, "/tokenize", R"({"content": 5})"), 400, "invalid_type", "content");
  expect_error(post(c, "/detokenize", R"({"tokens": [99999]})"), 400, "invalid_value", "tokens");
  // Still serving after all that.
  auto r = post(c, "/v1/completions", R"({"prompt": "Once", "max_tokens": 3})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("loom_http_requests_total{endpoint=\"/v1/completions\",code=\"413\"} 1"), std::string::npos)
      << metrics;
}

TEST(ServeE2E, ApiKeys) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--api-key", "sk-one", "--api-key", "sk-two"});
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  const std::string body = R"({"prompt": "Once", "max_tokens": 2})";
  expect_error(post(c, "/v1/completions", body), 401, "invalid_api_key");
  expect_error(post(c, "/v1/completions", body, {{"Authorization", "Bearer sk-three"}}), 401, "invalid_api_key");
  expect_error(post(c, "/v1/completions", body, {{"Authorization", "sk-one"}}), 401, "invalid_api_key");
  expect_error(c.Get("/v1/models"), 401, "invalid_api_key");
  for (const char* key : {"Bearer sk-one", "Bearer sk-two"}) {
    auto r = post(c, "/v1/completions", body, {{"Authorization", key}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  EXPECT_EQ(c.Get("/health")->status, 200);  // public: load balancers ask without a key
  EXPECT_EQ(c.Get("/")->status, 200);        // the page asks for the key itself
}

TEST(ServeE2E, BeyondParallelAndQueueIs429WithRetryAfter) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--parallel", "1", "--queue", "1", "--backend", "reference"});
  ASSERT_TRUE(s.ok());
  constexpr int kClients = 8;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> retry_after(kClients), bodies(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", s.port());
      c.set_read_timeout(60);
      auto r = post(c, "/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0})");
      if (!r) return;
      status[i] = r->status;
      retry_after[i] = r->get_header_value("Retry-After");
      bodies[i] = r->body;
    });
  for (auto& t : clients) t.join();
  int ok = 0, busy = 0;
  std::string answer;
  for (int i = 0; i < kClients; ++i) {
    if (status[i] == 200) {
      ++ok;
      const std::string text = json::parse(bodies[i])["choices"][0]["text"];
      if (answer.empty()) answer = text;
      EXPECT_EQ(text, answer);  // every answered request gets the full, same greedy answer
    } else {
      EXPECT_EQ(status[i], 429) << bodies[i];
      EXPECT_FALSE(retry_after[i].empty());
      EXPECT_EQ(json::parse(bodies[i])["error"]["code"], "rate_limit_exceeded");
      ++busy;
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1) << "8 requests at once with one running and one waiting: some must be refused";
}

TEST(ServeE2E, RepeatedPromptReportsCachedTokens) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({});
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  std::string prompt = "Once upon a time";
  for (int i = 0; i < 12; ++i) prompt += " there was a little dog";
  const std::string body = json({{"prompt", prompt}, {"max_tokens", 2}}).dump();
  auto first = post(c, "/v1/completions", body);
  auto second = post(c, "/v1/completions", body);
  ASSERT_TRUE(first && second);
  const json u1 = json::parse(first->body)["usage"], u2 = json::parse(second->body)["usage"];
  EXPECT_EQ(u1["prompt_tokens_details"]["cached_tokens"], 0);
  // Every prompt token but the last (whose logits are needed) is reused.
  EXPECT_GT(u2["prompt_tokens"].get<int>(), 48);
  EXPECT_EQ(u2["prompt_tokens_details"]["cached_tokens"].get<int>(), u2["prompt_tokens"].get<int>() - 1)
      << second->body;
  std::string m = c.Get("/metrics")->body;
  EXPECT_EQ(metric(m, "loom_prefix_cache_hit_tokens_total"), u2["prompt_tokens_details"]["cached_tokens"].get<int>());

  // A prompt of token ids that shares exactly its first 37 with the first
  // request's (2 blocks of 16 and 5 tokens) reports those 37 as cached.
  auto ids = json::parse(c.Post("/tokenize", json({{"content", prompt}, {"add_special", true}}).dump(),
                                "application/json")
                             ->body)["tokens"]
                 .get<std::vector<int>>();
  ASSERT_GT(ids.size(), 40u);
  ids.resize(40);
  ids[37] = ids[37] == 300 ? 301 : 300;  // the 38th token differs
  auto third = post(c, "/v1/completions", json({{"prompt", ids}, {"max_tokens", 2}}).dump());
  ASSERT_TRUE(third);
  ASSERT_EQ(third->status, 200) << third->body;
  EXPECT_EQ(json::parse(third->body)["usage"]["prompt_tokens_details"]["cached_tokens"], 37) << third->body;
  m = c.Get("/metrics")->body;
  EXPECT_EQ(metric(m, "loom_kv_cache_blocks_used"), 0) << m;
}

TEST(ServeE2E, TimeoutEndsTheAnswerAsLength) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--timeout", "0.05", "--backend", "reference"});  // 500 tokens take ~0.5 s there
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  auto r = post(c, "/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 500, "ignore_eos": true})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 500);
  const std::string m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("loom_requests_finished_total{reason=\"timeout\"} 1"), std::string::npos) << m;
}

TEST(ServeE2E, ClientHangingUpMidStreamCancelsTheRequest) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--backend", "reference"});  // slow enough that the answer is far from done
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = R"({"prompt": "Once upon a time", "max_tokens": 500, "temperature": 0, "ignore_eos": true, "stream": true})";
  std::atomic<int> chunks{0};
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // then hang up
  auto r = c.send(req);
  EXPECT_GE(chunks.load(), 3);

  // The server notices, cancels, and frees the request's KV blocks.
  std::string m;
  for (int i = 0; i < 100; ++i) {
    m = c.Get("/metrics")->body;
    if (metric(m, "loom_client_disconnects_total") >= 1 && metric(m, "loom_kv_cache_blocks_used") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(metric(m, "loom_client_disconnects_total"), 1) << m;
  EXPECT_EQ(metric(m, "loom_kv_cache_blocks_used"), 0) << m;
  EXPECT_EQ(metric(m, "loom_requests_generating"), 0) << m;
  EXPECT_NE(m.find("loom_requests_finished_total{reason=\"cancelled\"} 1"), std::string::npos) << m;
  EXPECT_LT(metric(m, "loom_generation_tokens_total"), 500) << m;
}

TEST(ServeE2E, ClientHangingUpOnAWholeAnswerCancelsTheRequest) {
  NEED_DEFAULT_MODEL();
  ServeProcess s({"--backend", "reference"});  // 500 tokens take several seconds there
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", s.port());
  // A plain socket, so the test decides when the connection closes.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(s.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string body = R"({"prompt": "Once upon a time", "max_tokens": 500, "temperature": 0, "ignore_eos": true})";
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, request.data(), request.size()), ssize_t(request.size()));

  // Wait until it generates, then hang up without reading anything.
  std::string m;
  for (int i = 0; i < 250 && metric(m, "loom_generation_tokens_total") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = c.Get("/metrics")->body;
  }
  ASSERT_GE(metric(m, "loom_generation_tokens_total"), 1) << m;
  ASSERT_GE(metric(m, "loom_kv_cache_blocks_used"), 1) << m;
  close(fd);
  const auto closed = std::chrono::steady_clock::now();

  // The server notices within a poll interval, cancels, and frees the KV blocks.
  for (int i = 0; i < 150; ++i) {
    m = c.Get("/metrics")->body;
    if (metric(m, "loom_client_disconnects_total") >= 1 && metric(m, "loom_kv_cache_blocks_used") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - closed).count();
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(metric(m, "loom_client_disconnects_total"), 1) << m;
  EXPECT_EQ(metric(m, "loom_kv_cache_blocks_used"), 0) << m;
  EXPECT_EQ(metric(m, "loom_requests_generating"), 0) << m;
  EXPECT_NE(m.find("loom_requests_finished_total{reason=\"cancelled\"} 1"), std::string::npos) << m;
  EXPECT_LT(metric(m, "loom_generation_tokens_total"), 500) << m;

  // A whole answer for a client that stays is unchanged: 200, the full body.
  auto r = post(c, "/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 5, "ignore_eos": true})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Length"), std::to_string(r->body.size()));
  EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 5) << r->body;
}

}  // namespace
}  // namespace loom::test
