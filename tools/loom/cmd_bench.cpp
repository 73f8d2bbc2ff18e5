// loom bench: prompt-processing and generation speed of a model on this
// machine, with the machine's own limits measured in the same run: memory
// bandwidth (generation reads every weight once per token) and peak FMA and
// int8-dot throughput (prompt processing is arithmetic: float FMAs for float
// weights, int8 dot products for quantized ones).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_synthetic.h"
#include "bench_train.h"
#include "commands.h"
#include "loom/backend/cpu/roofline.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/error.h"
#include "loom/core/thread_pool.h"
#include "loom/engine/session.h"

namespace loom::cli {

namespace {

struct BenchArgs {
  std::string model, synthetic, type = "q4_0", threads = "", backend = "cpu", kv_type = "f16";
  int n_prompt = 128, n_gen = 64, repeats = 5;
  bool json = false;
  bool train = false;
  std::string train_shape = "gpt2-small";
  int64_t train_batch = 1;
};

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

// Resident memory now (0 where /proc is missing).
double current_rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int t = std::stoi(item, &used);
      LOOM_CHECK(used == item.size() && t >= 1 && t <= 1024, "[cli] bad thread count '{}'", item);
      out.push_back(t);
    } catch (const std::logic_error&) {
      fail("[cli] -t takes thread counts separated by commas, e.g. 1,2; got '{}'", s);
    }
  }
  LOOM_CHECK(!out.empty(), "[cli] -t needs at least one thread count");
  return out;
}

// What one token costs: weight bytes read by the matmuls (every matrix but
// the embedding table, which is only looked up) and FLOPs of a prompt token.
struct Cost {
  double weight_bytes = 0, matmul_params = 0;
  double int8_params = 0;  // of matmul_params, those in quantized matrices (int8 dot products)
};

Cost model_cost(const model::ModelSource& src) {
  Cost c;
  bool has_output = false;
  for (const auto& t : src.tensors()) has_output = has_output || t.name == "output.weight";
  for (const auto& t : src.tensors()) {
    if (t.shape.rank != 2) continue;
    if (t.name == "token_embd.weight" && has_output) continue;
    c.weight_bytes += double(t.nbytes);
    c.matmul_params += double(t.shape.numel());
    if (t.dtype && traits(*t.dtype).is_quantized) c.int8_params += double(t.shape.numel());
  }
  return c;
}

struct Row {
  int threads;
  Stats pp, tg;
  double bandwidth_gbs, peak_gflops, peak_int8_gops, tg_roofline, pp_roofline, rss_mb;
};

void bench(const BenchArgs& a) {
  if (a.train) {
    LOOM_CHECK(a.model.empty() && a.synthetic.empty(), "[cli] --train benchmarks a --train-shape, not -m or --synthetic");
    bench_train({.shape = a.train_shape,
                 .seq_len = a.n_prompt,
                 .batch = a.train_batch,
                 .threads = parse_threads(a.threads.empty() ? std::to_string(ThreadPool::hardware_threads()) : a.threads),
                 .repeats = a.repeats,
                 .backend = a.backend,
                 .json = a.json});
    return;
  }
  LOOM_CHECK(a.model.empty() != a.synthetic.empty(), "[cli] give either -m MODEL or --synthetic SHAPE");
  LOOM_CHECK(a.n_prompt > 0 && a.n_gen > 0 && a.repeats > 0, "[cli] -p, -n and -r must be positive");
  std::string path = a.model;
  if (!a.synthetic.empty()) {
    DType t;
    LOOM_CHECK(parse_dtype(a.type, &t) && (t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
                                           t == DType::Q8_0 || t == DType::Q4_0),
               "[cli] --type must be f32, f16, bf16, q8_0 or q4_0, got '{}'", a.type);
    path = synthetic_model(a.synthetic, t);
  }
  const std::vector<int> thread_counts =
      parse_threads(a.threads.empty() ? std::to_string(ThreadPool::hardware_threads()) : a.threads);
  DType kv_type;
  LOOM_CHECK(parse_dtype(a.kv_type, &kv_type) && (kv_type == DType::F32 || kv_type == DType::F16),
             "[cli] --kv-type must be f32 or f16");

  std::vector<Row> rows;
  std::string model_line;
  Cost cost;
  for (int threads : thread_counts) {
    engine::SessionOptions so;
    so.model_path = path;
    so.backend = a.backend;
    so.threads = threads;
    so.ctx_size = a.n_prompt + a.n_gen + 16;
    so.kv_type = kv_type;
    so.batch_size = a.n_prompt;
    engine::Session s(so);
    const auto& cfg = s.model().config();
    cost = model_cost(s.source());
    model_line = fmt::format("{} ({}, {:.2f} B params in matrices, {:.2f} GiB read per token), backend {} ({} kernels)",
                             path, cfg.arch, cost.matmul_params / 1e9, cost.weight_bytes / double(1 << 30),
                             a.backend, backend::cpu::simd::kernels().name);
    std::vector<int32_t> prompt(static_cast<size_t>(a.n_prompt));
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919 + 13) % size_t(cfg.n_vocab));

    auto run_pp = [&] {
      s.reset();
      const double t0 = now();
      s.feed(prompt);
      return double(a.n_prompt) / (now() - t0);
    };
    auto run_tg = [&](int n) {
      s.reset();
      const double t0 = now();
      for (int i = 0; i < n; ++i) {
        const int32_t tok = prompt[size_t(i) % prompt.size()];
        s.feed(std::span<const int32_t>(&tok, 1));
      }
      return double(n) / (now() - t0);
    };
    run_pp();  // warm-up: compiles the graphs, faults the weights in
    run_tg(4);
    // KV cache read per generated token, at the average position of the run.
    const double kv_bytes = 2.0 * double(cfg.n_layer * cfg.n_head_kv * cfg.head_dim) *
                            double(traits(kv_type).block_bytes) * (a.n_gen / 2.0);
    const double tg_bytes = cost.weight_bytes + kv_bytes;
    // The machine's bandwidth is measured before every generation run (it
    // drifts on a shared machine), and each run is held to the bandwidth
    // measured next to it.
    // Peak RSS: the process's high-water mark before the first bandwidth pass
    // (whose arrays are not the model's), then the resident size after every
    // run (the model's memory is allocated once and stays).
    std::vector<double> pp, tg, bw, tg_fraction;
    double rss_mb = 0;
    for (int r = 0; r < a.repeats; ++r) {  // interleaved, so drift hits both alike
      pp.push_back(run_pp());
      rss_mb = std::max(rss_mb, rows.empty() && r == 0 ? peak_rss_mb() : current_rss_mb());
      bw.push_back(backend::cpu::measure_bandwidth_gbs(threads, size_t(3) << 29, 2));
      tg.push_back(run_tg(a.n_gen));
      rss_mb = std::max(rss_mb, current_rss_mb());
      tg_fraction.push_back(tg.back() / (bw.back() * 1e9 / tg_bytes));
    }
    Row row;
    row.threads = threads;
    row.pp = stats(pp);
    row.tg = stats(tg);
    row.rss_mb = rss_mb;
    row.bandwidth_gbs = stats(bw).median;
    row.tg_roofline = stats(tg_fraction).median;
    // Arithmetic limits, measured right after the speeds with the same threads.
    // A prompt token at peak takes (float FLOPs / FMA peak + int8 ops / int8 peak).
    row.peak_gflops = backend::cpu::measure_peak_gflops(threads);
    row.peak_int8_gops = backend::cpu::measure_peak_int8_gops(threads);
    const double attn_flops = 4.0 * double(cfg.n_layer * cfg.n_head * cfg.head_dim) * (a.n_prompt / 2.0);
    const double seconds_at_peak = (2.0 * (cost.matmul_params - cost.int8_params) + attn_flops) / (row.peak_gflops * 1e9) +
                                   2.0 * cost.int8_params / (row.peak_int8_gops * 1e9);
    row.pp_roofline = row.pp.median * seconds_at_peak;
    rows.push_back(row);
  }

  if (a.json) {
    nlohmann::json j;
    j["model"] = path;
    j["n_prompt"] = a.n_prompt;
    j["n_gen"] = a.n_gen;
    j["repeats"] = a.repeats;
    j["kernels"] = backend::cpu::simd::kernels().name;
    for (const Row& r : rows) {
      const std::string t = std::to_string(r.threads);
      j["pp_tps"][t] = r.pp.median;
      j["pp_tps_min"][t] = r.pp.min;
      j["pp_tps_max"][t] = r.pp.max;
      j["tg_tps"][t] = r.tg.median;
      j["tg_tps_min"][t] = r.tg.min;
      j["tg_tps_max"][t] = r.tg.max;
      j["tg_roofline"][t] = r.tg_roofline;
      j["pp_roofline"][t] = r.pp_roofline;
      j["bandwidth_gbs"][t] = r.bandwidth_gbs;
      j["peak_gflops"][t] = r.peak_gflops;
      j["peak_int8_gops"][t] = r.peak_int8_gops;
      j["peak_rss_mb"][t] = r.rss_mb;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::string out = fmt::format("model: {}\n", model_line);
  out += fmt::format("{:>7}  {:>6}  {:>10} {:>10} {:>10}  {}\n", "threads", "test", "tok/s", "min", "max", "roofline");
  for (const Row& r : rows) {
    const std::string peak = cost.int8_params > 0 ? fmt::format("{:.0f} GFLOP/s f32, {:.0f} GOP/s int8", r.peak_gflops,
                                                                r.peak_int8_gops)
                                                  : fmt::format("{:.1f} GFLOP/s", r.peak_gflops);
    out += fmt::format("{:>7}  {:>6}  {:>10.2f} {:>10.2f} {:>10.2f}  {:5.1f}% of peak {}\n", r.threads,
                       fmt::format("pp{}", a.n_prompt), r.pp.median, r.pp.min, r.pp.max, 100 * r.pp_roofline, peak);
    out += fmt::format("{:>7}  {:>6}  {:>10.2f} {:>10.2f} {:>10.2f}  {:5.1f}% of {:.1f} GB/s bandwidth (median)\n", r.threads,
                       fmt::format("tg{}", a.n_gen), r.tg.median, r.tg.min, r.tg.max, 100 * r.tg_roofline,
                       r.bandwidth_gbs);
  }
  out += fmt::format("peak RSS: {:.0f} MiB\n", rows.empty() ? 0.0 : rows.back().rss_mb);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Measure prompt and generation speed against this machine's limits");
  c->add_option("-m,--model", a->model, "Model file to benchmark");
  std::string shapes;
  for (const auto& s : synthetic_shapes()) shapes += (shapes.empty() ? "" : ", ") + std::string(s.name);
  c->add_option("--synthetic", a->synthetic, "Benchmark a random-weight model of a named shape: " + shapes);
  c->add_option("--type", a->type, "Weight type of the synthetic model: f32, f16, bf16, q8_0, q4_0")->capture_default_str();
  c->add_option("-p,--n-prompt", a->n_prompt, "Prompt tokens per prompt-processing run")->capture_default_str();
  c->add_option("-n,--n-gen", a->n_gen, "Tokens per generation run")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "Thread counts, comma-separated (default: all hardware threads)");
  c->add_option("-r,--repetitions", a->repeats, "Runs per test (median, min and max are reported)")->capture_default_str();
  c->add_option("--backend", a->backend, "Backend")->capture_default_str();
  c->add_option("--kv-type", a->kv_type, "KV cache type: f32 or f16")->capture_default_str();
  c->add_flag("--json", a->json, "Print one JSON object instead of the table");
  std::string train_shapes;
  for (const auto& s : train_bench_shapes()) train_shapes += (train_shapes.empty() ? "" : ", ") + s;
  c->add_flag("--train", a->train,
              "Benchmark training steps (forward, backward, AdamW) of --train-shape instead; -p is the sequence length");
  c->add_option("--train-shape", a->train_shape, "Shape for --train: " + train_shapes)->capture_default_str();
  c->add_option("--batch", a->train_batch, "Sequences per training step (--train)")->capture_default_str();
  c->callback([a] { bench(*a); });
}

}  // namespace loom::cli
