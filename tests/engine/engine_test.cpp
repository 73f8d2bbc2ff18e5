// Engine output is the single-sequence output: whatever else shares the
// batch, whether the prompt came from the prefix cache, was split into
// chunks or was recomputed after a preemption, each request gets exactly the
// tokens engine::Session (the independent single-sequence path) produces.
#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <mutex>

#include "engine_support.h"

namespace loom::engine {
namespace {

using namespace test;

std::vector<std::vector<int32_t>> encode_all(const tokenizer::Tokenizer& tok) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& p : story_prompts()) out.push_back(tok.encode(p, {.add_bos = true}));
  return out;
}

TEST(Engine, GreedyOutputEqualsSessionOneRequestAtATime) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  for (const auto& prompt : encode_all(e.tokenizer())) {
    const Request r = request(prompt, 40);
    Collector run;
    e.submit(r, run.callback());
    const Event fin = run.wait();
    const auto expected = reference(s, r);
    EXPECT_EQ(run.tokens(), expected);
    EXPECT_EQ(run.text(), completion_text(e.tokenizer(), prompt, expected));
    EXPECT_EQ(fin.usage.prompt_tokens, int64_t(prompt.size()));
    EXPECT_EQ(fin.usage.completion_tokens, int64_t(expected.size()));
    EXPECT_EQ(fin.reason, expected.size() == 40 ? FinishReason::Length : FinishReason::Stop);
  }
}

TEST(Engine, GreedyOutputEqualsSessionWhenSixRequestsShareTheBatch) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.max_sequences = 6;
  Engine e(o);
  Session s(session_options(path));
  const auto prompts = encode_all(e.tokenizer());
  ASSERT_EQ(prompts.size(), 6u);
  std::vector<Request> reqs;
  std::vector<std::unique_ptr<Collector>> runs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    reqs.push_back(request(prompts[i], int64_t(20 + 9 * i)));  // different lengths: they leave at different steps
    reqs.back().ignore_eos = i % 2 == 1;
    runs.push_back(std::make_unique<Collector>());
  }
  for (size_t i = 0; i < reqs.size(); ++i) e.submit(reqs[i], runs[i]->callback());
  for (auto& r : runs) r->wait();
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(runs[i]->tokens(), reference(s, reqs[i])) << "request " << i;
  const EngineStats st = e.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
}

TEST(Engine, SeededSamplingDoesNotDependOnTheRestOfTheBatch) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  const auto prompts = encode_all(e.tokenizer());
  sample::SamplerParams p;
  p.temperature = 0.9f;
  p.seed = 1234;
  const Request mine = request(prompts[0], 30, p);
  Collector alone;
  e.submit(mine, alone.callback());
  alone.wait();
  // The same request again, now among others that sample with their own seeds.
  std::vector<std::unique_ptr<Collector>> others;
  Collector crowded;
  for (size_t i = 1; i < 4; ++i) {
    sample::SamplerParams q = p;
    q.seed = 99 + i;
    others.push_back(std::make_unique<Collector>());
    e.submit(request(prompts[i], 30, q), others.back()->callback());
  }
  e.submit(mine, crowded.callback());
  for (auto& r : others) r->wait();
  crowded.wait();
  EXPECT_EQ(crowded.tokens(), alone.tokens());
  EXPECT_EQ(alone.tokens(), reference(s, mine));  // and it is what Session draws with that seed
}

TEST(Engine, APromptPrefixInTheCacheIsNotRecomputed) {
  LOOM_DEFAULT_MODEL(path);
  std::string shared = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
                       "One day, she saw a big dog in the park. The dog was very friendly and wanted to play.";
  EngineOptions o = engine_options(path);
  Engine e(o);
  Session s(session_options(path));
  const auto& tok = e.tokenizer();
  const auto first = tok.encode(shared + " Lily threw a ball.", {.add_bos = true});
  const auto second = tok.encode(shared + " Then it started to rain.", {.add_bos = true});
  size_t common = 0;
  while (common < first.size() && common < second.size() && first[common] == second[common]) ++common;
  const int64_t bs = o.block_size;
  ASSERT_GE(int64_t(common), 3 * bs) << "the shared prefix must cover at least three blocks";

  Collector a, b;
  e.submit(request(first, 10), a.callback());
  const Event fa = a.wait();
  EXPECT_EQ(fa.usage.cached_prompt_tokens, 0);
  const Request rb = request(second, 10);
  e.submit(rb, b.callback());
  const Event fb = b.wait();
  const int64_t shared_blocks = int64_t(common) / bs;
  EXPECT_GE(fb.usage.cached_prompt_tokens, shared_blocks * bs);
  EXPECT_LT(fb.usage.cached_prompt_tokens, int64_t(second.size()));  // the last token is always computed
  EXPECT_EQ(b.tokens(), reference(s, rb));
  EXPECT_GE(e.stats().prefix_cache_hit_tokens, uint64_t(shared_blocks * bs));
  EXPECT_EQ(e.stats().kv_blocks_used, 0);  // cached blocks nobody holds count as free

  // The same prompt again is served from the cache up to its last token.
  Collector c;
  e.submit(rb, c.callback());
  const Event fc = c.wait();
  EXPECT_EQ(fc.usage.cached_prompt_tokens, int64_t(second.size()) - 1);
  EXPECT_EQ(c.tokens(), b.tokens());

  // Without the prefix cache: nothing cached, same output.
  o.prefix_cache = false;
  Engine plain(o);
  Collector d;
  plain.submit(rb, d.callback());
  EXPECT_EQ(d.wait().usage.cached_prompt_tokens, 0);
  EXPECT_EQ(d.tokens(), b.tokens());
}

// Where the shared prefix ends inside a block, the matching rows of the
// cached block (a full block, or the partly filled last block of a finished
// request) are copied into the new request's own block: every shared token
// counts as cached, and the output is what an engine without the prefix
// cache computes.
TEST(Engine, APrefixEndingInsideABlockIsCopiedNotRecomputed) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.ctx_size = 512;
  Engine e(o);
  o.prefix_cache = false;
  Engine plain(o);
  const auto& tok = e.tokenizer();
  std::string story;
  for (const auto& p : story_prompts()) story += p + " ";
  std::vector<int32_t> base = tok.encode(story, {.add_bos = true});
  while (base.size() < 520) {
    const auto more = tok.encode(story, {.add_bos = false});
    base.insert(base.end(), more.begin(), more.end());
  }
  const auto tail_a = tok.encode("Lily threw a red ball to the dog.", {.add_bos = false});
  const auto tail_b = tok.encode("Then it started to rain.", {.add_bos = false});
  ASSERT_GE(tail_a.size(), 6u);
  ASSERT_GE(tail_b.size(), 6u);
  auto prompt = [&](size_t shared, const std::vector<int32_t>& tail) {  // `shared` tokens, then 6 of the tail
    std::vector<int32_t> p(base.begin(), base.begin() + ptrdiff_t(shared));
    p.insert(p.end(), tail.begin(), tail.begin() + ptrdiff_t(std::min<size_t>(tail.size(), 6)));
    return p;
  };

  struct Case {
    const char* what;
    std::vector<int32_t> first, second;
    int64_t first_tokens, expected_cached;
  };
  const std::vector<Case> cases = {
      // 500 = 31 blocks + 4 tokens, copied from the first request's partly
      // filled block 31 (its 506 prompt tokens and 1 of 2 generated ones
      // computed: 11 of 16 rows).
      {"500 shared tokens", prompt(500, tail_a), prompt(500, tail_b), 2, 500},
      // 37 = 2 blocks + 5 tokens of the first request's full block 2 (43
      // prompt tokens and 11 generated ones computed).
      {"37 shared tokens", prompt(37, tail_a), prompt(37, tail_b), 12, 37},
      // The whole prompt again: all but its last token (whose logits are
      // needed), 4 of them from a partly filled block (37 + 2 rows computed).
      {"the same 37-token prompt", prompt(37, {}), prompt(37, {}), 3, 36},
      // The whole prompt again, 12 tokens from a full block (45 + 7).
      {"the same 45-token prompt", prompt(45, {}), prompt(45, {}), 8, 44},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    if (c.first != c.second) {
      ASSERT_NE(c.first[size_t(c.expected_cached)], c.second[size_t(c.expected_cached)]);
    }
    Collector a, b, fresh;
    Request ra = request(c.first, c.first_tokens);
    ra.ignore_eos = true;  // so it computes as many tokens as the case says
    e.submit(ra, a.callback());
    EXPECT_EQ(a.wait().reason, FinishReason::Length);
    const uint64_t hits_before = e.stats().prefix_cache_hit_tokens;
    const Request rb = request(c.second, 8);
    e.submit(rb, b.callback());
    const Event fb = b.wait();
    EXPECT_EQ(fb.usage.cached_prompt_tokens, c.expected_cached);
    EXPECT_EQ(e.stats().prefix_cache_hit_tokens - hits_before, uint64_t(c.expected_cached));
    plain.submit(rb, fresh.callback());
    EXPECT_EQ(fresh.wait().usage.cached_prompt_tokens, 0);
    EXPECT_FALSE(b.tokens().empty());
    EXPECT_EQ(b.tokens(), fresh.tokens());
    EXPECT_EQ(e.stats().kv_blocks_used, 0);
    EXPECT_EQ(plain.stats().kv_blocks_used, 0);
    // The next case starts from a clean cache: 4 unrelated prompts of 32
    // blocks each take all 128 blocks, evicting what was cached.
    Request rf = request(std::vector<int32_t>(size_t(o.ctx_size - 1), base[1]), 1);
    rf.ignore_eos = true;
    for (int i = 0; i < 4; ++i) {
      Collector f;
      rf.prompt[0] = int32_t(2 + i);  // different first tokens: nothing shared
      e.submit(rf, f.callback());
      f.wait();
    }
    EXPECT_EQ(e.stats().kv_blocks_used, 0);
  }
}

TEST(Engine, ALongPromptIsPrefilledInChunksWhileOthersKeepDecoding) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.max_sequences = 2;
  o.max_batch_tokens = 16;
  Engine e(o);
  Session s(session_options(path));
  const auto& tok = e.tokenizer();
  std::string long_text;
  for (int i = 0; i < 6; ++i) long_text += "The little dog ran in the green park with his friend the cat. ";
  Request decode = request(tok.encode("Once upon a time", {.add_bos = true}), 120);
  decode.ignore_eos = true;
  const Request prefill = request(tok.encode(long_text, {.add_bos = true}), 8);
  const int64_t n_long = int64_t(prefill.prompt.size());
  // Every step carries one decode token, so the long prompt advances by at most 15 a step.
  const int64_t min_chunks = (n_long + o.max_batch_tokens - 2) / (o.max_batch_tokens - 1);
  ASSERT_GE(min_chunks, 8);

  // One log of both requests' events, in the order the engine sent them.
  std::mutex mu;
  std::vector<std::pair<int, Event>> log;
  Collector a, b;
  a.extra = [&](const Event& ev) { std::lock_guard l(mu); log.emplace_back(0, ev); };
  b.extra = [&](const Event& ev) { std::lock_guard l(mu); log.emplace_back(1, ev); };
  e.submit(decode, a.callback());
  e.submit(prefill, b.callback());
  a.wait();
  b.wait();

  EXPECT_EQ(b.tokens(), reference(s, prefill));
  EXPECT_EQ(a.tokens(), reference(s, decode));
  // Before the long prompt's first token: the other request's tokens kept
  // coming (one per step of the prefill), and it was still running.
  int64_t a_tokens_before = 0;
  bool a_finished_before = false, seen_b = false;
  for (const auto& [who, ev] : log) {
    if (who == 1 && ev.kind == Event::Kind::Token) {
      seen_b = true;
      break;
    }
    if (who == 0 && ev.kind == Event::Kind::Token) ++a_tokens_before;
    if (who == 0 && ev.kind == Event::Kind::Finished) a_finished_before = true;
  }
  ASSERT_TRUE(seen_b);
  EXPECT_FALSE(a_finished_before);
  EXPECT_GE(a_tokens_before, min_chunks - 1);
}

TEST(Engine, KvPressurePreemptsAndRecomputesWithoutChangingOutputs) {
  LOOM_DEFAULT_MODEL(path);
  Session s(session_options(path));
  for (bool prefix_cache : {true, false}) {
    SCOPED_TRACE(prefix_cache ? "with the prefix cache" : "without the prefix cache");
    EngineOptions o = engine_options(path);
    o.ctx_size = 128;
    o.kv_cache_tokens = 160;  // 10 blocks of 16 for four running sequences that want ~6 each
    o.max_sequences = 4;      // and a fifth request waits in the queue
    o.prefix_cache = prefix_cache;
    Engine e(o);
    const auto prompts = encode_all(e.tokenizer());
    std::vector<Request> reqs;
    std::vector<std::unique_ptr<Collector>> runs;
    for (size_t i = 0; i < 5; ++i) {
      reqs.push_back(request(prompts[i + 1], 70));
      reqs.back().ignore_eos = true;
      runs.push_back(std::make_unique<Collector>());
    }
    for (size_t i = 0; i < reqs.size(); ++i) e.submit(reqs[i], runs[i]->callback());
    for (auto& r : runs) EXPECT_EQ(r->wait().reason, FinishReason::Length);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(runs[i]->tokens(), reference(s, reqs[i])) << "request " << i;
    const EngineStats st = e.stats();
    EXPECT_GT(st.preemptions, 0u);
    EXPECT_EQ(st.kv_blocks_used, 0);
    EXPECT_EQ(st.kv_blocks_total, 10);
  }
}

TEST(Engine, LogprobsAreTheLogSoftmaxOfTheModelsLogits) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  const auto prompt = e.tokenizer().encode("The cat sat on the", {.add_bos = true});
  Request r = request(prompt, 6);
  r.ignore_eos = true;
  r.logprobs = true;
  r.top_logprobs = 5;
  Collector run;
  e.submit(r, run.callback());
  run.wait();
  std::vector<Event> toks;
  for (const auto& ev : run.events)
    if (ev.kind == Event::Kind::Token) toks.push_back(ev);
  ASSERT_EQ(toks.size(), 6u);

  // Reference: the Session's logits, log-softmax in float64.
  std::span<const float> logits = s.feed(prompt);
  const auto V = size_t(e.config().n_vocab);
  for (const Event& ev : toks) {
    std::vector<double> x(logits.begin(), logits.begin() + ptrdiff_t(V));
    double mx = x[0];
    for (double v : x) mx = std::max(mx, v);
    double sum = 0;
    for (double v : x) sum += std::exp(v - mx);
    std::vector<int32_t> order(V);
    for (size_t i = 0; i < V; ++i) order[i] = int32_t(i);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[size_t(a)] > x[size_t(b)]; });
    const int32_t greedy_id = order[0];
    ASSERT_EQ(ev.token, greedy_id);
    ASSERT_TRUE(ev.logprob.has_value());
    EXPECT_EQ(ev.logprob->token, greedy_id);
    EXPECT_EQ(ev.logprob->text, e.tokenizer().token_bytes(greedy_id));
    EXPECT_NEAR(ev.logprob->logprob, x[size_t(greedy_id)] - mx - std::log(sum), 1e-4);
    ASSERT_EQ(ev.top.size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(ev.top[k].token, order[k]);
      EXPECT_NEAR(ev.top[k].logprob, x[size_t(order[k])] - mx - std::log(sum), 1e-4);
    }
    logits = s.feed(std::span<const int32_t>(&ev.token, 1));
  }
}

TEST(Engine, StopStringsCutTheTextJustBeforeThem) {
  LOOM_DEFAULT_MODEL(path);
  Engine e(engine_options(path));
  Session s(session_options(path));
  const auto prompt = e.tokenizer().encode("Lily and Tom", {.add_bos = true});
  Request r = request(prompt, 60);
  r.ignore_eos = true;
  const std::string full = completion_text(e.tokenizer(), prompt, reference(s, r));
  ASSERT_GT(full.size(), 40u);
  // A stop string from the middle of the text (spanning token boundaries),
  // and one that never occurs.
  const std::string stop = full.substr(20, 7);
  r.stop = {"never occurs in a story about Lily", stop};
  Collector run;
  e.submit(r, run.callback());
  const Event fin = run.wait();
  EXPECT_EQ(fin.reason, FinishReason::Stop);
  EXPECT_EQ(run.text(), full.substr(0, full.find(stop)));
  // Without a match the whole text comes out, the held-back part in Finished.
  r.stop = {"zzzq"};
  Collector all;
  e.submit(r, all.callback());
  EXPECT_EQ(all.wait().reason, FinishReason::Length);
  EXPECT_EQ(all.text(), full);
}

TEST(Engine, AMixOfRequestsUnderPressureAllFinishCorrectly) {
  LOOM_DEFAULT_MODEL(path);
  EngineOptions o = engine_options(path);
  o.ctx_size = 128;
  o.kv_cache_tokens = 128;  // 8 blocks: one long sequence can take all of them
  o.max_sequences = 3;
  o.max_batch_tokens = 32;
  Engine e(o);
  Session s(session_options(path));
  const auto& tok = e.tokenizer();
  const std::string shared = "Once upon a time, there was a little girl named Lily. She loved to play outside. ";
  std::vector<Request> reqs;
  for (int i = 0; i < 10; ++i) {
    std::string text = i % 3 == 0 ? shared : "";  // some share a prefix
    text += story_prompts()[size_t(i) % story_prompts().size()];
    reqs.push_back(request(tok.encode(text, {.add_bos = true}), 20 + 7 * (i % 5)));
    reqs.back().ignore_eos = i % 2 == 0;
  }
  std::vector<std::unique_ptr<Collector>> runs;
  std::vector<std::promise<std::shared_ptr<RequestHandle>>> handles(reqs.size());
  std::vector<std::shared_future<std::shared_ptr<RequestHandle>>> futures;
  for (auto& h : handles) futures.push_back(h.get_future().share());
  for (size_t i = 0; i < reqs.size(); ++i) {
    runs.push_back(std::make_unique<Collector>());
    if (i % 4 == 1) {  // cancelled after a few tokens
      auto seen = std::make_shared<int>(0);
      auto f = futures[i];
      runs.back()->extra = [seen, f, i](const Event& ev) {
        if (ev.kind == Event::Kind::Token && ++*seen == int(2 + i)) f.get()->cancel();
      };
    }
  }
  for (size_t i = 0; i < reqs.size(); ++i) handles[i].set_value(e.submit(reqs[i], runs[i]->callback()));
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const Event fin = runs[i]->wait();
    const auto expected = reference(s, reqs[i]);
    const auto got = runs[i]->tokens();
    if (i % 4 == 1 && fin.reason == FinishReason::Cancelled) {
      ASSERT_LE(got.size(), expected.size());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin()));
      EXPECT_EQ(got.size(), 2 + i);
    } else {
      EXPECT_EQ(got, expected);
    }
  }
  const EngineStats st = e.stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running + st.waiting, 0);
  EXPECT_EQ(st.finished_stop + st.finished_length + st.finished_cancelled, reqs.size());
}

}  // namespace
}  // namespace loom::engine
