#include "bench_train.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loom/backend/backend.h"
#include "loom/backend/cpu/roofline.h"
#include "loom/core/error.h"
#include "loom/train/llama_train.h"
#include "loom/train/optimizer.h"

namespace loom::cli {

namespace {

struct Shape {
  const char* name;
  train::LlamaTrainConfig c;
};

// gpt2-small: GPT-2 small's width, depth, heads, vocabulary and context in
// Llama form; SwiGLU with F = 2048 has GPT-2's MLP parameter count
// (3 * 768 * 2048 = 2 * 768 * 3072). tiny: for tests.
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {"gpt2-small", {.vocab_size = 50257, .dim = 768, .n_layers = 12, .n_heads = 12, .ff_dim = 2048,
                      .max_seq_len = 1024}},
      {"tiny", {.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ff_dim = 172,
                .max_seq_len = 256}},
  };
  return s;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Row {
  int threads;
  double tps, tps_min, tps_max, achieved_gflops, peak_gflops, fraction;
};

}  // namespace

std::vector<std::string> train_bench_shapes() {
  std::vector<std::string> out;
  for (const Shape& s : shapes()) out.push_back(s.name);
  return out;
}

void bench_train(const TrainBenchOptions& o) {
  const auto it = std::find_if(shapes().begin(), shapes().end(), [&](const Shape& s) { return o.shape == s.name; });
  LOOM_CHECK(it != shapes().end(), "[cli] unknown --train-shape '{}' (known: {})", o.shape,
             fmt::join(train_bench_shapes(), ", "));
  const train::LlamaTrainConfig& c = it->c;
  LOOM_CHECK(o.seq_len > 0 && o.seq_len <= c.max_seq_len && o.batch > 0 && o.repeats > 0,
             "[cli] --train needs 0 < -p <= {} and positive --batch and -r", c.max_seq_len);
  const std::vector<train::ParamSpec> specs = train::llama_param_specs(c);
  // Model FLOPs per token: 6 per matmul parameter (forward 2, backward 4) and
  // causal attention, forward 2*C*T per layer (QK^T and AV over the lower
  // triangle, averaged over positions) and twice that backward.
  double matmul_params = 0, all_params = 0;
  for (const auto& s : specs) {
    all_params += double(s.size());
    if (s.shape.size() == 2) matmul_params += double(s.size());
  }
  const double flops_per_token = 6.0 * matmul_params + 6.0 * double(c.n_layers * c.dim * o.seq_len);

  auto params = train::init_llama_params(c, 1);
  std::vector<train::ParamInfo> info;
  for (const auto& s : specs) info.push_back({s.name, s.size(), s.decay});
  const size_t n_tok = size_t(o.batch * o.seq_len);
  std::vector<int32_t> tokens(n_tok), targets(n_tok);
  for (size_t i = 0; i < n_tok; ++i) {
    tokens[i] = int32_t((i * 7919 + 13) % size_t(c.vocab_size));
    targets[i] = int32_t((i * 104729 + 7) % size_t(c.vocab_size));
  }

  std::vector<Row> rows;
  for (int threads : o.threads) {
    auto be = backend::create(o.backend, {.threads = threads});
    train::LlamaTrainStep step(c, *be, o.batch, o.seq_len);
    train::AdamW opt({}, info);
    std::vector<std::vector<float>> grads;
    for (const auto& s : specs) grads.emplace_back(size_t(s.size()));
    std::vector<std::span<float>> p_spans(params.begin(), params.end());
    std::vector<std::span<const float>> g_spans(grads.begin(), grads.end());
    auto one_step = [&] {
      const double t0 = now();
      step.run(params, tokens, targets);
      for (size_t i = 0; i < grads.size(); ++i) {
        std::fill(grads[i].begin(), grads[i].end(), 0.0f);
        step.add_grad(i, grads[i]);
      }
      opt.step(p_spans, g_spans, 1e-4f);
      return double(n_tok) / (now() - t0);
    };
    one_step();  // warm-up: compiles, allocates, faults pages in
    std::vector<double> tps;
    for (int r = 0; r < o.repeats; ++r) tps.push_back(one_step());
    Row row{threads, median(tps), *std::min_element(tps.begin(), tps.end()),
            *std::max_element(tps.begin(), tps.end()), 0, 0, 0};
    row.achieved_gflops = row.tps * flops_per_token / 1e9;
    row.peak_gflops = backend::cpu::measure_peak_gflops(threads);  // same run, same threads
    row.fraction = row.achieved_gflops / row.peak_gflops;
    rows.push_back(row);
  }

  if (o.json) {
    nlohmann::json j = {{"shape", o.shape}, {"params", all_params}, {"seq_len", o.seq_len}, {"batch", o.batch},
                        {"repeats", o.repeats}, {"flops_per_token", flops_per_token}};
    for (const Row& r : rows) {
      const std::string t = std::to_string(r.threads);
      j["train_tps"][t] = r.tps;
      j["train_tps_min"][t] = r.tps_min;
      j["train_tps_max"][t] = r.tps_max;
      j["train_gflops"][t] = r.achieved_gflops;
      j["peak_gflops"][t] = r.peak_gflops;
      j["train_roofline"][t] = r.fraction;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::string out = fmt::format(
      "train: {} ({:.1f} M params, {:.1f} M in matrices), batch {} x {} tokens, {:.2f} MFLOP per token, backend {}\n",
      o.shape, all_params / 1e6, matmul_params / 1e6, o.batch, o.seq_len, flops_per_token / 1e6, o.backend);
  out += fmt::format("{:>7}  {:>10} {:>10} {:>10}  {}\n", "threads", "tok/s", "min", "max", "achieved");
  for (const Row& r : rows)
    out += fmt::format("{:>7}  {:>10.1f} {:>10.1f} {:>10.1f}  {:.1f} GFLOP/s = {:.1f}% of peak {:.1f} GFLOP/s\n",
                       r.threads, r.tps, r.tps_min, r.tps_max, r.achieved_gflops, 100 * r.fraction, r.peak_gflops);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace loom::cli
