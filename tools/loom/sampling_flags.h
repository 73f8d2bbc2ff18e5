// The sampling flags shared by `loom run` and `loom chat` (and their defaults,
// which follow llama.cpp's), turned into sampler parameters.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <random>

#include "loom/sample/sampler.h"

namespace loom::cli {

struct SamplingFlags {
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  int top_k = 40;
  int64_t seed = -1;  // < 0: random, printed to stderr

  void add_to(CLI::App* c) {
    c->add_option("--temp", temp, "Temperature; 0 is greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    c->add_option("--top-k", top_k, "Top-k sampling (0: off)")->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--top-p", top_p, "Top-p (nucleus) sampling (1: off)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    c->add_option("--min-p", min_p, "Min-p sampling (0: off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    c->add_option("--repeat-penalty", repeat_penalty, "Repetition penalty over the last 64 tokens (1: off)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 10.0));
    c->add_option("--seed", seed, "Random seed (default: random)");
  }

  sample::SamplerParams params() const {
    sample::SamplerParams p;
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = repeat_penalty;
    p.seed = seed >= 0 ? uint64_t(seed) : std::random_device{}();
    if (temp > 0) std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(p.seed));
    return p;
  }
};

}  // namespace loom::cli
