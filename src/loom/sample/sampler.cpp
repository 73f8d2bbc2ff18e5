#include "loom/sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "loom/core/error.h"

namespace loom::sample {

namespace {

// SplitMix64 (Steele, Lea, Flood 2014): spreads one 64-bit seed over the four
// words of xoshiro's state, as its authors recommend.
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Candidates are ordered by logit, highest first; equal logits by id so the
// order (and with it every draw) does not depend on the sort algorithm.
bool higher(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

Sampler::Sampler(const SamplerParams& params) : params_(params) {
  LOOM_CHECK(!std::isnan(params.temperature), "[sample] temperature is NaN");
  LOOM_CHECK(!std::isnan(params.top_p), "[sample] top_p is NaN");
  LOOM_CHECK(std::isfinite(params.min_p) && params.min_p <= 1.0f, "[sample] min_p must be at most 1, got {}",
             params.min_p);
  LOOM_CHECK(std::isfinite(params.repeat_penalty) && params.repeat_penalty > 0.0f,
             "[sample] repeat_penalty must be positive, got {}", params.repeat_penalty);
  LOOM_CHECK(params.repeat_last_n >= -1, "[sample] repeat_last_n must be -1 (all), 0 (none) or positive, got {}",
             params.repeat_last_n);
  LOOM_CHECK(std::isfinite(params.presence_penalty) && std::isfinite(params.frequency_penalty),
             "[sample] presence_penalty and frequency_penalty must be finite");
  reseed(params.seed);
}

void Sampler::reseed(uint64_t seed) {
  params_.seed = seed;
  uint64_t x = seed;
  for (uint64_t& word : state_) word = splitmix64(x);
}

// xoshiro256** (Blackman, Vigna 2018), top 53 bits as a double in [0, 1):
// only integer arithmetic and one exact conversion, so every platform draws
// the same numbers.
double Sampler::next_uniform() {
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

void Sampler::apply_penalties(std::span<const int32_t> history) {
  const SamplerParams& p = params_;
  if (p.repeat_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) return;
  size_t n = history.size();
  if (p.repeat_last_n >= 0) n = std::min(n, static_cast<size_t>(p.repeat_last_n));
  if (n == 0) return;

  // Sorting a copy of the window gives each distinct token with its count
  // without a vocabulary-sized table; window_ keeps its capacity between calls.
  window_.assign(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(window_.begin(), window_.end());
  const auto vocab = static_cast<int32_t>(candidates_.size());
  for (size_t i = 0; i < window_.size();) {
    const int32_t id = window_[i];
    size_t j = i;
    while (j < window_.size() && window_[j] == id) ++j;
    LOOM_CHECK(id >= 0 && id < vocab, "[sample] history holds token id {}, outside the vocabulary of {} logits", id,
               vocab);
    const auto count = static_cast<float>(j - i);
    float& logit = candidates_[static_cast<size_t>(id)].first;  // still indexed by id here
    // CTRL / llama.cpp repeat penalty: always moves the logit towards "less likely".
    logit = logit <= 0.0f ? logit * p.repeat_penalty : logit / p.repeat_penalty;
    logit -= count * p.frequency_penalty + p.presence_penalty;
    i = j;
  }
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  LOOM_CHECK(!logits.empty(), "[sample] no logits to sample from");
  LOOM_CHECK(logits.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
             "[sample] {} logits are more than token ids can address", logits.size());
  const SamplerParams& p = params_;

  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    LOOM_CHECK(!std::isnan(logits[i]), "[sample] logit of token {} is NaN (the model produced invalid output)", i);
    candidates_[i] = {logits[i], static_cast<int32_t>(i)};
  }
  apply_penalties(history);

  if (p.temperature <= 0.0f) {
    return std::min_element(candidates_.begin(), candidates_.end(), higher)->second;
  }

  // top-k: keep the k highest logits.
  const size_t n = candidates_.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    const auto k = static_cast<std::ptrdiff_t>(p.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), higher);
    candidates_.resize(static_cast<size_t>(k));
  } else if (p.top_p < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(), higher);  // top-p needs the order
  } else {
    std::iter_swap(candidates_.begin(), std::min_element(candidates_.begin(), candidates_.end(), higher));
  }
  // From here candidates_[0] holds the highest logit.
  const double max_logit = candidates_[0].first;
  if (!std::isfinite(max_logit)) return candidates_[0].second;  // +inf wins outright; all -inf: lowest id

  // top-p: the smallest prefix (by probability) whose mass reaches p.
  if (p.top_p < 1.0f) {
    double total = 0.0;
    for (const auto& c : candidates_) total += std::exp(c.first - max_logit);
    const double target = static_cast<double>(p.top_p) * total;
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < candidates_.size()) {
      cumulative += std::exp(candidates_[keep].first - max_logit);
      ++keep;
      if (cumulative >= target) break;
    }
    candidates_.resize(std::max<size_t>(keep, 1));
  }

  // min-p: p_i >= min_p * p_max  <=>  exp(l_i - l_max) >= min_p (the softmax
  // denominator cancels). The top token always stays.
  if (p.min_p > 0.0f) {
    const double min_p = p.min_p;
    auto last = std::remove_if(candidates_.begin() + 1, candidates_.end(), [&](const auto& c) {
      return std::exp(c.first - max_logit) < min_p;
    });
    candidates_.erase(last, candidates_.end());
  }

  // Temperature, softmax and the draw, in double so rounding does not depend
  // on vectorisation of float sums.
  const double inv_temp = 1.0 / static_cast<double>(p.temperature);
  double total = 0.0;
  for (const auto& c : candidates_) total += std::exp((c.first - max_logit) * inv_temp);
  const double u = next_uniform() * total;
  double cumulative = 0.0;
  int32_t last_possible = candidates_[0].second;
  for (const auto& c : candidates_) {
    const double w = std::exp((c.first - max_logit) * inv_temp);
    if (w > 0.0) last_possible = c.second;
    cumulative += w;
    if (u < cumulative) return c.second;
  }
  return last_possible;  // u was rounded up to the total
}

}  // namespace loom::sample
