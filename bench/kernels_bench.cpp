// Micro-benchmarks of the CPU kernels, per instruction set:
//   GEMV   one activation row against a weight matrix (decoding); reported as
//          bytes of weights per second, to compare with memory bandwidth
//   GEMM   64 activation rows (prompt processing); reported as FLOP/s
//   quantize_row and the decode
//   attention kernels over a paged cache (attention_decode)
// Run: build/bin/microbench_kernels [--benchmark_filter=gemv] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/half.h"
#include "loom/quant/quantize.h"

namespace {

using loom::DType;
using loom::backend::cpu::simd::Kernels;
using loom::backend::cpu::simd::QRow;

std::vector<float> random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> d, s;
  std::vector<int32_t> o8;
  std::vector<QRow> rows;
  QuantizedRows(const Kernels& k, const std::vector<float>& x, int64_t n_rows, int64_t K)
      : q(size_t(n_rows * K)), d(size_t(n_rows * K / 32)), s(size_t(n_rows * K / 32)), o8(size_t(n_rows * K / 4)) {
    for (int64_t r = 0; r < n_rows; ++r) {
      k.quantize_row(x.data() + r * K, K, q.data() + r * K, d.data() + r * K / 32, s.data() + r * K / 32,
                     o8.data() + r * K / 4);
      rows.push_back({q.data() + r * K, d.data() + r * K / 32, s.data() + r * K / 32, o8.data() + r * K / 4});
    }
  }
};

// A weight matrix of N rows x K in type t, large enough (~48 MB in F16) to
// come from memory rather than cache, as in decoding.
struct Weights {
  DType type;
  int64_t N, K;
  std::vector<std::byte> bytes;
  Weights(DType t, int64_t n, int64_t k) : type(t), N(n), K(k) {
    const auto f = random(size_t(k), 1);
    const size_t rb = loom::row_bytes(t, k);
    bytes.resize(rb * size_t(n));
    std::vector<std::byte> row(rb);
    loom::quant::quantize_row(t, f.data(), row.data(), k);
    for (int64_t r = 0; r < n; ++r) std::copy(row.begin(), row.end(), bytes.begin() + long(rb) * r);
  }
  const std::byte* row(int64_t r) const { return bytes.data() + loom::row_bytes(type, K) * size_t(r); }
};

float gemv_row(const Kernels& k, const Weights& w, int64_t r, const QRow& xq, const float* x) {
  const std::byte* p = w.row(r);
  switch (w.type) {
    case DType::Q4_0: return k.dot_q4_0(reinterpret_cast<const loom::BlockQ4_0*>(p), xq, w.K / 32);
    case DType::Q8_0: return k.dot_q8_0(reinterpret_cast<const loom::BlockQ8_0*>(p), xq, w.K / 32);
    case DType::Q4_K: return k.dot_q4_k(reinterpret_cast<const loom::BlockQ4_K*>(p), xq, w.K / 256);
    case DType::Q6_K: return k.dot_q6_k(reinterpret_cast<const loom::BlockQ6_K*>(p), xq, w.K / 256);
    case DType::F16: return k.dot_f16(reinterpret_cast<const uint16_t*>(p), x, w.K);
    case DType::BF16: return k.dot_bf16(reinterpret_cast<const uint16_t*>(p), x, w.K);
    default: return k.dot_f32(reinterpret_cast<const float*>(p), x, w.K);
  }
}

void gemv(benchmark::State& st, const Kernels* k, DType t) {
  const int64_t K = 4096, N = 6144;
  Weights w(t, N, K);
  const auto x = random(size_t(K), 2);
  QuantizedRows xq(*k, x, 1, K);
  std::vector<float> y(static_cast<size_t>(N));
  for (auto _ : st) {
    for (int64_t r = 0; r < N; ++r) y[size_t(r)] = gemv_row(*k, w, r, xq.rows[0], x.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(w.bytes.size()));
}

void gemm(benchmark::State& st, const Kernels* k, DType t) {
  const int64_t K = 2048, N = 256, T = 64;
  Weights w(t, N, K);
  const auto x = random(size_t(T * K), 3);
  QuantizedRows xq(*k, x, T, K);
  std::vector<const float*> xp;
  for (int64_t r = 0; r < T; ++r) xp.push_back(x.data() + r * K);
  std::vector<float> y(static_cast<size_t>(T * N));
  const int64_t stride = int64_t(loom::row_bytes(t, K));
  for (auto _ : st) {
    switch (t) {
      case DType::Q4_0: k->gemm_q4_0(w.bytes.data(), stride, N, xq.rows.data(), T, K / 32, y.data(), N); break;
      case DType::Q8_0: k->gemm_q8_0(w.bytes.data(), stride, N, xq.rows.data(), T, K / 32, y.data(), N); break;
      case DType::Q4_K: k->gemm_q4_k(w.bytes.data(), stride, N, xq.rows.data(), T, K / 32, y.data(), N); break;
      case DType::Q6_K: k->gemm_q6_k(w.bytes.data(), stride, N, xq.rows.data(), T, K / 32, y.data(), N); break;
      case DType::F16: k->gemm_f16(w.bytes.data(), stride, N, xp.data(), T, K, y.data(), N); break;
      case DType::BF16: k->gemm_bf16(w.bytes.data(), stride, N, xp.data(), T, K, y.data(), N); break;
      default: k->gemm_f32(w.bytes.data(), stride, N, xp.data(), T, K, y.data(), N); break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["FLOP/s"] = benchmark::Counter(double(st.iterations()) * 2.0 * double(N * K * T), benchmark::Counter::kIsRate);
}

void quantize(benchmark::State& st, const Kernels* k) {
  const int64_t K = 4096;
  const auto x = random(size_t(K), 4);
  std::vector<int8_t> q(static_cast<size_t>(K));
  std::vector<float> d(static_cast<size_t>(K / 32)), s(static_cast<size_t>(K / 32));
  std::vector<int32_t> o8(static_cast<size_t>(K / 4));
  for (auto _ : st) {
    k->quantize_row(x.data(), K, q.data(), d.data(), s.data(), o8.data());
    benchmark::DoNotOptimize(q.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * K * 4);
}

// Decode attention of one token with TinyLlama's shape (32 query heads in 4
// groups of 8, head dim 64) over n cached keys in a paged cache of 16-slot
// blocks in scrambled order: one attend call per KV head. Reported as bytes
// of keys and values read.
void attention_decode(benchmark::State& st, const Kernels* k, DType t) {
  using loom::backend::cpu::simd::AttendArgs;
  const int64_t Hkv = 4, g = 8, D = 64, bs = 16, n = st.range(0), blocks = (n + bs - 1) / bs;
  const size_t esize = t == DType::F16 ? 2 : 4, slot_bytes = size_t(Hkv * D) * esize;
  std::vector<std::byte> kc(size_t(blocks * bs) * slot_bytes), vc(kc.size());
  const auto f = random(kc.size() / esize, 6);
  for (size_t i = 0; i < f.size(); ++i) {
    if (t == DType::F16) {
      const uint16_t h = loom::f32_to_f16(f[i]);
      std::memcpy(kc.data() + 2 * i, &h, 2);
      std::memcpy(vc.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(kc.data() + 4 * i, &f[i], 4);
      std::memcpy(vc.data() + 4 * i, &f[i], 4);
    }
  }
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t((b * 7) % blocks);  // 7 is prime to most counts
  const auto q = random(size_t(Hkv * g * D), 7);
  std::vector<float> o(q.size()), ml(size_t(2 * Hkv * g));
  std::vector<float> scratch(size_t(loom::backend::cpu::simd::attend_scratch_floats(g, D)));
  const auto attend = t == DType::F16 ? k->attend_f16 : k->attend_f32;
  for (auto _ : st) {
    for (int64_t h = 0; h < Hkv; ++h) {
      const AttendArgs a{kc.data() + size_t(h * D) * esize, vc.data() + size_t(h * D) * esize, int64_t(slot_bytes),
                         table.data(), bs, q.data() + h * g * D, g, D, 0.125f, 0, n};
      attend(a, ml.data() + h * g, ml.data() + Hkv * g + h * g, o.data() + h * g * D, scratch.data());
    }
    benchmark::DoNotOptimize(o.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * n * int64_t(slot_bytes) * 2);
}

const int registered = [] {
  for (const Kernels* k : loom::backend::cpu::simd::available_kernels()) {
    const std::string isa = k->name;
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16, DType::BF16, DType::F32})
      benchmark::RegisterBenchmark(("gemv/" + isa + "/" + std::string(loom::name(t))).c_str(), gemv, k, t);
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16, DType::BF16, DType::F32})
      benchmark::RegisterBenchmark(("gemm/" + isa + "/" + std::string(loom::name(t))).c_str(), gemm, k, t);
    benchmark::RegisterBenchmark(("quantize_row/" + isa).c_str(), quantize, k);
    for (DType t : {DType::F32, DType::F16})
      benchmark::RegisterBenchmark(("attention_decode/" + isa + "/" + std::string(loom::name(t))).c_str(),
                                   attention_decode, k, t)
          ->Arg(128)
          ->Arg(1024)
          ->Arg(4096);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
