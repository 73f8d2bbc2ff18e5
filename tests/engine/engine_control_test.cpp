// Engine control: refusing what can never run or does not fit the queue,
// cancelling and timing out (blocks freed, the right Finished reason),
// constraints, failures confined to their request, statistics, shutdown.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <future>
#include <thread>

#include "engine_support.h"
#include "loom/core/error.h"
#include "loom/sample/constraint.h"

namespace loom::engine {
namespace {

using namespace test;

std::vector<int32_t> prompt_of(const Engine& e, const std::string& text) {
  return e.tokenizer().encode(text, {.add_bos = true});
}

TEST(EngineControl, RefusesRequestsThatCanNeverRun) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.ctx_size = 64;
  Engine e(o);
  Collector never;
  EXPECT_THROW(e.submit(request(std::vector<int32_t>(65, 5), 4), never.callback()), Error);  // longer than the context
  EXPECT_THROW(e.submit(request({}, 4), never.callback()), Error);
  EXPECT_THROW(e.submit(request({1, 2, e.tokenizer().vocab_size()}, 4), never.callback()), Error);
  EXPECT_THROW(e.submit(request({1, -3}, 4), never.callback()), Error);
  // A prompt that fills the context exactly still gets its one token.
  Collector full;
  Request r = request(std::vector<int32_t>(64, 5), 10);
  r.ignore_eos = true;
  e.submit(r, full.callback());
  const Event fin = full.wait();
  EXPECT_EQ(fin.reason, FinishReason::Length);
  EXPECT_EQ(fin.usage.completion_tokens, 1);
  EXPECT_TRUE(never.events.empty());
}

TEST(EngineControl, QueueFullWhenMaxQueueRequestsWait) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.max_sequences = 1;
  o.max_queue = 2;
  Engine e(o);
  // The first request's first token holds the engine thread until the test
  // has queued the others: one running, then exactly max_queue waiting.
  std::promise<void> in_callback, release;
  std::shared_future<void> released = release.get_future().share();
  Collector first, second, third, fourth;
  bool once = false;
  first.extra = [&](const Event&) {
    if (once) return;
    once = true;
    in_callback.set_value();
    released.wait();
  };
  Request r = request(prompt_of(e, "Once upon a time"), 5);
  e.submit(r, first.callback());
  in_callback.get_future().wait();
  e.submit(r, second.callback());
  e.submit(r, third.callback());
  EXPECT_THROW(e.submit(r, fourth.callback()), QueueFull);
  EXPECT_EQ(e.stats().waiting, 2);
  release.set_value();
  for (Collector* run : {&first, &second, &third}) run->wait();
  EXPECT_EQ(second.tokens(), first.tokens());
  EXPECT_TRUE(fourth.events.empty());
  Collector fifth;  // room again
  e.submit(r, fifth.callback());
  fifth.wait();
}

TEST(EngineControl, CancelStopsARequestAndFreesItsBlocks) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  Request r = request(prompt_of(e, "One day, a little bird"), 100);
  r.ignore_eos = true;
  const Request other = request(prompt_of(e, "Tim was sad. His mom said"), 30);
  std::promise<std::shared_ptr<RequestHandle>> handle;
  std::shared_future<std::shared_ptr<RequestHandle>> h = handle.get_future().share();
  Collector run, bystander;
  int seen = 0;
  run.extra = [&](const Event& ev) {
    if (ev.kind == Event::Kind::Token && ++seen == 3) h.get()->cancel();  // cancel() is allowed in a callback
  };
  handle.set_value(e.submit(r, run.callback()));
  e.submit(other, bystander.callback());
  const Event fin = run.wait();
  EXPECT_EQ(fin.reason, FinishReason::Cancelled);
  EXPECT_EQ(fin.usage.completion_tokens, 3);  // nothing after the step that saw the cancel
  EXPECT_EQ(run.tokens().size(), 3u);
  bystander.wait();
  EXPECT_EQ(bystander.tokens(), reference(s, other));
  const EngineStats st = e.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.finished_cancelled, 1u);
  EXPECT_EQ(st.running + st.waiting, 0);
}

TEST(EngineControl, ADeadlineFinishesWithTimeout) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Request r = request(prompt_of(e, "Once upon a time"), 200);
  r.ignore_eos = true;
  r.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);  // already past
  Collector late;
  e.submit(r, late.callback());
  Event fin = late.wait();
  EXPECT_EQ(fin.reason, FinishReason::Timeout);
  EXPECT_EQ(fin.usage.completion_tokens, 0);
  // A deadline passing mid-generation (the callback outlasts it).
  r.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  Collector slow;
  slow.extra = [&](const Event& ev) {
    if (ev.kind == Event::Kind::Token) std::this_thread::sleep_until(*r.deadline + std::chrono::milliseconds(20));
  };
  e.submit(r, slow.callback());
  fin = slow.wait();
  EXPECT_EQ(fin.reason, FinishReason::Timeout);
  EXPECT_LE(fin.usage.completion_tokens, 1);
  EXPECT_EQ(e.stats().finished_timeout, 2u);
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

// Allows exactly one token sequence, then is complete.
class ForcedText final : public sample::Constraint {
 public:
  ForcedText(std::vector<int32_t> ids, bool fail_on_accept) : ids_(std::move(ids)), fail_(fail_on_accept) {}
  std::unique_ptr<sample::ConstraintState> start() const override { return std::make_unique<State>(*this); }

 private:
  struct State final : sample::ConstraintState {
    explicit State(const ForcedText& c) : c(c) {}
    void mask(std::span<float> logits) override {
      for (size_t i = 0; i < logits.size(); ++i)
        if (int32_t(i) != c.ids_[at]) logits[i] = -INFINITY;
    }
    void accept(int32_t id) override {
      if (c.fail_) throw Error("[test] this constraint refuses every token");
      if (id != c.ids_[at]) throw Error("[test] token not allowed");
      ++at;
    }
    bool complete() const override { return at == c.ids_.size(); }
    const ForcedText& c;
    size_t at = 0;
  };
  std::vector<int32_t> ids_;
  bool fail_;
};

TEST(EngineControl, AConstraintChoosesTheTokensAndEndsTheText) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  const auto forced = e.tokenizer().encode("the big red dog");
  Request r = request(prompt_of(e, "Once upon a time"), 50);
  r.sampling.temperature = 0.8f;  // whatever the sampler would like, only the allowed token remains
  r.constraint = std::make_shared<ForcedText>(forced, false);
  Collector run;
  e.submit(r, run.callback());
  EXPECT_EQ(run.wait().reason, FinishReason::Stop);
  EXPECT_EQ(run.tokens(), forced);
}

// Checks, independently of the recognizer, that the whitespace between the
// JSON tokens of `text` (a JSON text or a prefix of one) is what
// pretty-printers write: at most one space or tab, then at most one line
// break and 4 bytes of indentation per open container. "" if so.
std::string whitespace_fault(const std::string& text) {
  bool in_string = false, escaped = false;
  int depth = 0;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      in_string = escaped || c != '"';
      escaped = !escaped && c == '\\';
      ++i;
      continue;
    }
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      if (c == '"') in_string = true;
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') --depth;
      ++i;
      continue;
    }
    size_t j = i;
    if (text[j] == ' ' || text[j] == '\t') ++j;
    if (j + 1 < text.size() && text[j] == '\r' && text[j + 1] == '\n') ++j;
    if (j < text.size() && text[j] == '\n') {
      ++j;
      const size_t indent_start = j;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j - indent_start > size_t(4 * depth)) return "indentation deeper than 4 per level at byte " + std::to_string(i);
    }
    if (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
      return "padding whitespace at byte " + std::to_string(j);
    i = j;
  }
  return "";
}

// response_format json_object, greedy, on the default model (which writes
// stories, not JSON): it must not spend its tokens on whitespace. A text that
// ends on its own must be one complete JSON object.
TEST(EngineControl, GreedyJsonObjectTextIsNotPaddedWithWhitespace) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  const auto json_object = sample::json_constraint(e.token_table(), "");
  for (const std::string& text : story_prompts()) {
    SCOPED_TRACE(text);
    Request r = request(prompt_of(e, text), 200);
    r.constraint = json_object;
    Collector run;
    e.submit(r, run.callback());
    const Event fin = run.wait();
    const std::string out = run.text();
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(whitespace_fault(out), "") << out;
    if (fin.reason == FinishReason::Stop) {
      const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
      EXPECT_TRUE(j.is_object()) << out;
    } else {
      EXPECT_EQ(fin.reason, FinishReason::Length) << out;
    }
  }
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

TEST(EngineControl, AFailureInsideAStepFinishesOnlyThatRequest) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  Request bad = request(prompt_of(e, "Once upon a time"), 20);
  bad.constraint = std::make_shared<ForcedText>(std::vector<int32_t>{5}, true);
  const Request good = request(prompt_of(e, "The cat"), 20);
  Collector b, g;
  e.submit(bad, b.callback());
  e.submit(good, g.callback());
  const Event fin = b.wait();
  EXPECT_EQ(fin.reason, FinishReason::Error);
  EXPECT_NE(fin.error.find("refuses every token"), std::string::npos);
  g.wait();
  EXPECT_EQ(g.tokens(), reference(s, good));
  // A callback that throws fails its own request too; the engine goes on.
  Collector thrower, after;
  thrower.extra = [](const Event& ev) {
    if (ev.kind == Event::Kind::Token) throw std::runtime_error("client gone");
  };
  e.submit(good, thrower.callback());
  // (The throwing callback is not called again, so its Collector never sees Finished.)
  e.submit(good, after.callback());
  after.wait();
  EXPECT_EQ(after.tokens(), g.tokens());
  const EngineStats st = e.stats();
  EXPECT_EQ(st.finished_error, 2u);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

TEST(EngineControl, StatsCountTokensAndLatenciesCumulatively) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  std::vector<std::unique_ptr<Collector>> runs;
  int64_t generated = 0, with_tokens = 0, prompt = 0;
  for (const char* text : {"Once upon a time", "The cat", "Lily and Tom"}) {
    runs.push_back(std::make_unique<Collector>());
    const auto p = prompt_of(e, text);
    prompt += int64_t(p.size());
    e.submit(request(p, 12), runs.back()->callback());
  }
  for (auto& r : runs) {
    const Event fin = r->wait();
    generated += fin.usage.completion_tokens;
    with_tokens += fin.usage.completion_tokens > 0;
    EXPECT_GE(fin.total_seconds, fin.first_token_seconds);
    EXPECT_GE(fin.first_token_seconds, fin.queue_seconds);
  }
  const EngineStats st = e.stats();
  EXPECT_EQ(st.generated_tokens, uint64_t(generated));
  EXPECT_EQ(st.prompt_tokens, uint64_t(prompt));
  EXPECT_EQ(st.finished_stop + st.finished_length, 3u);
  EXPECT_EQ(st.kv_blocks_total, 4 * 256 / 16);
  for (const Histogram* h : {&st.time_to_first_token, &st.inter_token_latency}) {
    ASSERT_EQ(h->counts.size(), h->bounds.size() + 1);
    for (size_t i = 1; i < h->counts.size(); ++i) EXPECT_GE(h->counts[i], h->counts[i - 1]);
    EXPECT_EQ(h->counts.back(), h->count);
    EXPECT_GT(h->sum, 0);
  }
  EXPECT_EQ(st.time_to_first_token.count, uint64_t(with_tokens));
  EXPECT_EQ(st.inter_token_latency.count, uint64_t(generated - with_tokens));
}

TEST(EngineControl, DestroyingTheEngineCancelsWhatIsLeft) {
  LOOM_DEFAULT_MODEL(path);
  std::vector<std::unique_ptr<Collector>> runs;
  {
    EngineOptions o = engine_options(path);
    o.max_sequences = 1;
    Engine e(o);
    for (int i = 0; i < 3; ++i) {
      runs.push_back(std::make_unique<Collector>());
      Request r = request(prompt_of(e, "Once upon a time"), 240);
      r.ignore_eos = true;
      e.submit(r, runs.back()->callback());
    }
  }
  for (auto& r : runs) {
    ASSERT_TRUE(r->done);
    EXPECT_EQ(r->events.back().kind, Event::Kind::Finished);
  }
  // The last one was still queued behind the others.
  EXPECT_EQ(runs.back()->events.back().reason, FinishReason::Cancelled);
  EXPECT_EQ(runs.back()->events.back().usage.completion_tokens, 0);
}

}  // namespace
}  // namespace loom::engine
