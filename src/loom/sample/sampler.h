// Sampler: logits -> next token. Penalties, then top-k, top-p, min-p and
// temperature, then a draw from a seeded generator whose sequence is the same
// on every platform. temperature <= 0 means greedy (argmax after penalties).
//
//   sample::Sampler s({.temperature = 0.7f, .top_p = 0.9f, .seed = 42});
//   int32_t next = s.sample(logits, history);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace loom::sample {

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;            // <= 0: off
  float top_p = 0.95f;           // >= 1: off
  float min_p = 0.05f;           // <= 0: off
  float repeat_penalty = 1.0f;   // 1: off (llama.cpp / CTRL style: divide positive logits, multiply negative)
  int32_t repeat_last_n = 64;    // how much of the history the penalties look at; -1: all
  float presence_penalty = 0.0f;   // OpenAI style: subtract once if the token occurred
  float frequency_penalty = 0.0f;  // OpenAI style: subtract per occurrence
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  // `history` is the ids so far (prompt and generated) that penalties consider.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history = {});
  void reseed(uint64_t seed);
  const SamplerParams& params() const { return params_; }

 private:
  double next_uniform();  // [0, 1)
  void apply_penalties(std::span<const int32_t> history);

  SamplerParams params_;
  uint64_t state_[4];
  std::vector<std::pair<float, int32_t>> candidates_;  // reused between calls
  std::vector<int32_t> window_;                        // penalty window, sorted; reused between calls
};

}  // namespace loom::sample
