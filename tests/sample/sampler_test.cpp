// Sampler behaviour. Expected values are worked out by hand in the comments
// (penalties, the kept sets of top-k/top-p/min-p and their renormalised
// probabilities) or come from an independent Python implementation of
// splitmix64 + xoshiro256** (the golden draw sequences).
#include "loom/sample/sampler.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <new>
#include <vector>

#include "loom/core/error.h"

// Counts heap allocations so a test can check that sample() reuses its buffers.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// GCC flags free() on memory from operator new, not knowing these are the
// replacements that got it from malloc().
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new[](std::size_t size, const std::nothrow_t& t) noexcept { return operator new(size, t); }
// Every delete that can meet memory from the replacements above (the whole
// test binary shares them: std::stable_sort's nothrow buffers included).
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace loom::sample {
namespace {

std::vector<float> log_probs(std::initializer_list<double> probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

SamplerParams plain(float temperature, uint64_t seed = 1) {
  // Every filter off: only what a test switches on acts.
  return {.temperature = temperature, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = seed};
}

// Draws `n` times and returns the frequency of every id drawn.
std::map<int32_t, double> frequencies(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, double> f;
  for (int i = 0; i < n; ++i) f[s.sample(logits)] += 1.0 / n;
  return f;
}

// Exactly the ids in `expected` appear, each with its probability within
// 6 standard deviations of a binomial proportion.
void expect_distribution(const std::map<int32_t, double>& got, const std::map<int32_t, double>& expected, int n) {
  for (const auto& [id, f] : got) EXPECT_TRUE(expected.count(id)) << "token " << id << " should never be drawn";
  for (const auto& [id, p] : expected) {
    const double sigma = std::sqrt(p * (1 - p) / n);
    const auto it = got.find(id);
    const double f = it == got.end() ? 0.0 : it->second;
    EXPECT_NEAR(f, p, 6 * sigma) << "token " << id;
  }
}

TEST(Sampler, GreedyTakesArgmaxAndLowestIdOnTies) {
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 1.9f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 2.0f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{-5.0f, -3.0f, -3.0f}), 1);
  Sampler negative(plain(-1.0f));
  EXPECT_EQ(negative.sample(std::vector<float>{0.0f, 0.0f, 7.0f}), 2);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  Sampler s(p);
  // 3.0 / 1.5 = 2.0 < 2.5: token 0 loses to token 1.
  const std::vector<float> pos{3.0f, 2.5f, -1.0f};
  EXPECT_EQ(s.sample(pos), 0);
  EXPECT_EQ(s.sample(pos, std::vector<int32_t>{0}), 1);
  // -1.0 * 1.5 = -1.5 < -1.2: token 0 loses to token 1.
  const std::vector<float> neg{-1.0f, -1.2f};
  EXPECT_EQ(s.sample(neg, std::vector<int32_t>{0}), 1);
  // Counted once however often it occurred: 3.0 / 1.5 = 2.0 > 1.9.
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 1.9f}, std::vector<int32_t>{0, 0, 0, 0}), 0);
}

TEST(Sampler, RepeatPenaltyLooksOnlyAtTheLastN) {
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 2;
  Sampler s(p);
  const std::vector<float> logits{3.0f, 2.0f, 1.0f};
  // Token 0 is three steps back: outside the window, 3.0 stays the maximum.
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{0, 2, 2}), 0);
  // Inside the window: 3.0 / 2 = 1.5 < 2.0.
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{2, 0, 2}), 1);

  p.repeat_last_n = 0;  // none
  Sampler none(p);
  EXPECT_EQ(none.sample(logits, std::vector<int32_t>{0}), 0);
  p.repeat_last_n = -1;  // all
  Sampler all(p);
  std::vector<int32_t> long_history(1000, 2);
  long_history[0] = 0;
  EXPECT_EQ(all.sample(logits, long_history), 1);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  SamplerParams p = plain(0.0f);
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.1f;
  Sampler s(p);
  // token 0: 2.0 - 2*0.5 - 0.1 = 0.9; token 1: 1.5 - 1*0.5 - 0.1 = 0.9; token 2: 1.0.
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.5f, 1.0f}, std::vector<int32_t>{0, 1, 0}), 2);
  // Without history nothing changes.
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.5f, 1.0f}), 0);
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  std::vector<float> logits(1000);
  uint32_t x = 12345;
  for (float& l : logits) {
    x = x * 1664525u + 1013904223u;
    l = static_cast<float>(x >> 8) / static_cast<float>(1 << 24) * 4.0f - 2.0f;
  }
  const auto argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (float temperature : {0.5f, 1.0f, 5.0f, 100.0f}) {
    SamplerParams p = plain(temperature, 7);
    p.top_k = 1;
    Sampler s(p);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(s.sample(logits), argmax) << "temperature " << temperature;
  }
}

TEST(Sampler, TemperatureOneDrawsFromTheSoftmax) {
  constexpr int n = 40000;
  Sampler s(plain(1.0f, 3));
  expect_distribution(frequencies(s, log_probs({0.5, 0.25, 0.15, 0.10}), n),
                      {{0, 0.5}, {1, 0.25}, {2, 0.15}, {3, 0.10}}, n);
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  constexpr int n = 40000;
  // p^(1/T) renormalised. T = 0.5: 0.25, 0.0625, 0.0625 -> 2/3, 1/6, 1/6.
  Sampler sharp(plain(0.5f, 4));
  expect_distribution(frequencies(sharp, log_probs({0.5, 0.25, 0.25}), n), {{0, 2.0 / 3}, {1, 1.0 / 6}, {2, 1.0 / 6}},
                      n);
  // T = 2: sqrt(0.5), 0.5, 0.5 -> 0.7071/1.7071 = 0.41421, 0.29289, 0.29289.
  Sampler flat(plain(2.0f, 5));
  expect_distribution(frequencies(flat, log_probs({0.5, 0.25, 0.25}), n), {{0, 0.41421}, {1, 0.29289}, {2, 0.29289}},
                      n);
}

TEST(Sampler, TopKKeepsTheKHighest) {
  constexpr int n = 40000;
  SamplerParams p = plain(1.0f, 6);
  p.top_k = 2;
  Sampler s(p);
  // Keeps 0.4 and 0.3 (ids 1 and 3) -> 4/7, 3/7.
  expect_distribution(frequencies(s, log_probs({0.2, 0.4, 0.1, 0.3}), n), {{1, 4.0 / 7}, {3, 3.0 / 7}}, n);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  constexpr int n = 40000;
  SamplerParams p = plain(1.0f, 8);
  p.top_p = 0.7f;
  Sampler s(p);
  // Cumulative 0.5, 0.75 >= 0.7: keeps ids 0 and 1 -> 2/3, 1/3.
  expect_distribution(frequencies(s, log_probs({0.5, 0.25, 0.15, 0.10}), n), {{0, 2.0 / 3}, {1, 1.0 / 3}}, n);

  p.top_p = 0.8f;  // 0.5, 0.75, 0.9 >= 0.8: keeps 0, 1, 2 -> 0.5/0.9, 0.25/0.9, 0.15/0.9
  Sampler wider(p);
  expect_distribution(frequencies(wider, log_probs({0.10, 0.25, 0.15, 0.5}), n),
                      {{3, 0.5 / 0.9}, {1, 0.25 / 0.9}, {2, 0.15 / 0.9}}, n);

  p.top_p = 0.0f;  // at least one token always stays
  Sampler one(p);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(one.sample(log_probs({0.3, 0.6, 0.1})), 1);
}

TEST(Sampler, MinPKeepsTokensAboveAFractionOfTheTop) {
  constexpr int n = 40000;
  SamplerParams p = plain(1.0f, 9);
  p.min_p = 0.45f;
  Sampler s(p);
  // Threshold 0.45 * 0.4 = 0.18: keeps 0.4, 0.3, 0.2 -> 4/9, 3/9, 2/9.
  expect_distribution(frequencies(s, log_probs({0.4, 0.3, 0.2, 0.1}), n), {{0, 4.0 / 9}, {1, 3.0 / 9}, {2, 2.0 / 9}},
                      n);
  p.min_p = 0.6f;  // threshold 0.24: keeps 0.4, 0.3 -> 4/7, 3/7
  Sampler strict(p);
  expect_distribution(frequencies(strict, log_probs({0.1, 0.3, 0.2, 0.4}), n), {{3, 4.0 / 7}, {1, 3.0 / 7}}, n);
}

TEST(Sampler, FiltersThenTemperatureInOrder) {
  constexpr int n = 40000;
  SamplerParams p = plain(0.5f, 10);
  p.top_k = 3;    // keeps 0.4, 0.3, 0.2 (renormalised 4/9, 3/9, 2/9)
  p.top_p = 0.75f;  // 4/9 = 0.444, 7/9 = 0.778 >= 0.75: keeps 0.4, 0.3
  // then T = 0.5 squares: 0.16, 0.09 -> 16/25, 9/25.
  Sampler s(p);
  expect_distribution(frequencies(s, log_probs({0.4, 0.3, 0.2, 0.1}), n), {{0, 16.0 / 25}, {1, 9.0 / 25}}, n);
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  const float inf = std::numeric_limits<float>::infinity();
  Sampler s(plain(1.0f, 11));
  const std::vector<float> logits{-inf, 0.0f, -inf, 0.0f, -inf};
  for (int i = 0; i < 2000; ++i) {
    const int32_t id = s.sample(logits);
    ASSERT_TRUE(id == 1 || id == 3) << id;
  }
}

// 256 equal logits: the draw is floor(u * 256), i.e. the top byte of each
// xoshiro256** output. Expected bytes from an independent Python
// implementation (splitmix64 seeding, xoshiro256** as published).
TEST(Sampler, DrawSequenceIsTheSameOnEveryPlatform) {
  const std::vector<float> logits(256, 0.0f);
  const std::map<uint64_t, std::array<int32_t, 16>> golden = {
      {0, {153, 191, 26, 106, 187, 255, 108, 137, 219, 235, 29, 17, 27, 167, 126, 75}},
      {42, {21, 97, 174, 236, 253, 197, 184, 217, 194, 149, 174, 74, 205, 82, 182, 224}},
      {0xdeadbeef, {197, 101, 84, 66, 251, 157, 244, 84, 232, 168, 99, 114, 175, 3, 164, 128}},
  };
  for (const auto& [seed, expected] : golden) {
    Sampler s(plain(1.0f, seed));
    for (int32_t want : expected) EXPECT_EQ(s.sample(logits), want) << "seed " << seed;
  }
}

TEST(Sampler, SeedsAndReseed) {
  const std::vector<float> logits(1000, 0.0f);
  auto draw = [&](Sampler& s) {
    std::vector<int32_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(s.sample(logits));
    return out;
  };
  Sampler a(plain(1.0f, 1234)), b(plain(1.0f, 1234)), c(plain(1.0f, 1235));
  const auto first = draw(a);
  EXPECT_EQ(first, draw(b));
  EXPECT_NE(first, draw(c));
  EXPECT_NE(first, draw(a));  // the stream moves on
  a.reseed(1234);
  EXPECT_EQ(first, draw(a));
  EXPECT_EQ(a.params().seed, 1234u);
  c.reseed(1234);
  EXPECT_EQ(first, draw(c));
}

TEST(Sampler, NoAllocationAfterTheFirstCall) {
  SamplerParams p{.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f, .repeat_penalty = 1.1f,
                  .repeat_last_n = 64, .presence_penalty = 0.1f, .frequency_penalty = 0.1f, .seed = 5};
  Sampler s(p);
  std::vector<float> logits(32000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 7919) % 1000) / 100.0f;
  std::vector<int32_t> history;
  for (int i = 0; i < 100; ++i) history.push_back((i * 31) % 32000);
  const long at_start = g_allocations.load();
  s.sample(logits, history);
  EXPECT_GT(g_allocations.load(), at_start) << "the counter should see the first call's buffers";
  p.top_k = 0;  // the full-vocabulary sort path too
  Sampler full(p);
  full.sample(logits, history);
  const long before = g_allocations.load();
  for (int i = 0; i < 20; ++i) {
    s.sample(logits, history);
    full.sample(logits, history);
  }
  EXPECT_EQ(g_allocations.load(), before);
}

TEST(Sampler, RejectsBadInput) {
  Sampler s(plain(1.0f));
  EXPECT_THROW(s.sample(std::vector<float>{}), Error);
  EXPECT_THROW(s.sample(std::vector<float>{0.0f, std::nanf("")}), Error);
  SamplerParams p = plain(1.0f);
  p.repeat_penalty = 1.3f;
  Sampler pen(p);
  EXPECT_THROW(pen.sample(std::vector<float>{0.0f, 1.0f}, std::vector<int32_t>{5}), Error);
  EXPECT_THROW(pen.sample(std::vector<float>{0.0f, 1.0f}, std::vector<int32_t>{-1}), Error);
  EXPECT_THROW(Sampler({.repeat_penalty = 0.0f}), Error);
  EXPECT_THROW(Sampler({.repeat_last_n = -2}), Error);
  EXPECT_THROW(Sampler({.min_p = 1.5f}), Error);
  try {
    s.sample(std::vector<float>{});
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[sample]", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace loom::sample
