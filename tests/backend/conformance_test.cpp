// The conformance suite: every op, on every registered backend, against the
// reference backend, with per-dtype tolerances and shapes that are not
// multiples of any block or vector width (a quantized row is a whole number
// of 32-element blocks by definition, so there the odd sizes are the row and
// column counts and the number of blocks).
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend_harness.h"
#include "loom/core/error.h"
#include "loom/quant/quantize.h"

namespace loom {
namespace {

using graph::Graph;
using graph::Value;
using test::GraphCase;
using test::HostTensor;
using test::random_floats;

HostTensor weights(DType t, int64_t n, int64_t k, uint32_t seed) {
  const auto f = random_floats(size_t(n * k), seed);
  return HostTensor{t, {n, k}, quant::quantize_rows(t, f.data(), n, k)};
}

// Largest |a - b| / (atol + rtol * |b|); <= 1 passes.
double worst(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  EXPECT_EQ(a.size(), b.size());
  double w = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    w = std::max(w, std::fabs(double(a[i]) - double(b[i])) / (atol + rtol * std::fabs(double(b[i]))));
  }
  return w;
}

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void expect_matches_reference(const GraphCase& c, double atol, double rtol) {
    auto ref = backend::create("reference");
    auto be = backend::create(GetParam(), {.threads = 3});  // odd thread count on purpose
    const auto want = test::run_case(*ref, c);
    const auto got = test::run_case(*be, c);
    EXPECT_LE(worst(got, want, atol, rtol), 1.0) << GetParam();
  }
};

// Every weight type through decode and prefill shapes, within the bound that
// int8 activations allow for quantized weights.
void check_matmul_every_weight_type(const std::string& backend_name, bool mapped) {
  struct Shape3 {
    int64_t rows, n, k;
  };
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    const bool block = traits(t).is_quantized;
    const int64_t bs = traits(t).block_size;  // rows are 3, 5, 7 blocks long (1 element for plain types)
    const int64_t k1 = block ? 3 * bs : 67, k2 = block ? 5 * bs : 131, k3 = block ? 7 * bs : 99;
    // Decode (1 row), a few rows, and a prefill-sized batch; then whole
    // groups of 16 weight rows (the CPU backend repacks Q4_0 for those), one
    // batch crossing its 64-token blocks.
    for (Shape3 s : {Shape3{1, 37, k1}, Shape3{3, 53, k2}, Shape3{19, 45, k3}, Shape3{1, 48, k2}, Shape3{13, 32, k3},
                     Shape3{70, 16, k1}}) {
      SCOPED_TRACE(std::string(name(t)) + " rows " + std::to_string(s.rows));
      GraphCase c;
      c.constants = {weights(t, s.n, s.k, 7)};
      c.inputs = {test::host_f32({s.rows, s.k}, random_floats(size_t(s.rows * s.k), 8))};
      c.mapped_constants = mapped;
      c.build = [](Graph&, auto& k, auto& in) { return graph::matmul(in[0], k[0]); };
      auto ref = backend::create("reference");
      auto be = backend::create(backend_name, {.threads = 3});  // odd thread count on purpose
      const auto want = test::run_case(*ref, c);
      const auto got = test::run_case(*be, c);
      if (!block) {
        EXPECT_LE(worst(got, want, 1e-5, 1e-4), 1.0) << backend_name;
        continue;
      }
      // Backends may quantize activations to int8 blocks (scale = block max / 127)
      // for Q8_0/Q4_0 weights. Rounding moves each x by at most half a step,
      // so |y - y_ref| <= sum_k |w_nk| * step(x_rk) / 2 (+ float rounding).
      const auto x = random_floats(size_t(s.rows * s.k), 8);
      std::vector<float> w(static_cast<size_t>(s.n * s.k));
      for (int64_t n = 0; n < s.n; ++n)
        dequantize_row(t, c.constants[0].bytes.data() + row_bytes(t, s.k) * size_t(n), w.data() + n * s.k, s.k);
      for (int64_t r = 0; r < s.rows; ++r) {
        for (int64_t n = 0; n < s.n; ++n) {
          double bound = 0;
          for (int64_t k = 0; k < s.k; ++k) {
            double amax = 0;
            for (int64_t j = k / 32 * 32; j < k / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(double(x[size_t(r * s.k + j)])));
            bound += std::fabs(double(w[size_t(n * s.k + k)])) * amax / 127 / 2;
          }
          const size_t i = size_t(r * s.n + n);
          EXPECT_LE(std::fabs(double(got[i]) - want[i]), bound + 1e-5 * (1 + std::fabs(want[i]))) << r << "," << n;
        }
      }
    }
  }
}

TEST_P(Conformance, MatMulEveryWeightType) { check_matmul_every_weight_type(GetParam(), /*mapped=*/false); }

// Weights mapped from a file, as a model's are: the CPU backend computes from
// its own copies of them (repacked, or copied onto huge pages) and drops the
// file's pages from the process.
TEST_P(Conformance, MatMulWeightsMappedFromAFile) { check_matmul_every_weight_type(GetParam(), /*mapped=*/true); }

TEST_P(Conformance, MatMulRank3Input) {
  GraphCase c;
  c.constants = {weights(DType::F32, 11, 13, 1)};
  c.inputs = {test::host_f32({3, 5, 13}, random_floats(3 * 5 * 13, 2))};
  c.build = [](Graph&, auto& k, auto& in) { return graph::matmul(in[0], k[0]); };
  expect_matches_reference(c, 1e-5, 1e-4);
}

TEST_P(Conformance, GetRowsEveryTableType) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(name(t));
    GraphCase c;
    c.constants = {weights(t, 29, traits(t).is_quantized ? 3 * traits(t).block_size : 23, 3)};
    c.inputs = {test::host_i32({7}, {0, 28, 5, 5, 17, 1, 9})};
    c.build = [](Graph&, auto& k, auto& in) { return graph::get_rows(k[0], in[0]); };
    expect_matches_reference(c, 0, 0);  // a lookup is exact
  }
}

TEST_P(Conformance, RmsNormWithAndWithoutWeight) {
  for (bool weighted : {true, false}) {
    GraphCase c;
    c.constants = {test::host_f32({77}, random_floats(77, 4, 0.5f, 1.5f))};
    c.inputs = {test::host_f32({5, 77}, random_floats(5 * 77, 5, -3, 3))};
    c.build = [weighted](Graph&, auto& k, auto& in) { return graph::rms_norm(in[0], weighted ? k[0] : Value(), 1e-5f); };
    expect_matches_reference(c, 1e-6, 1e-5);
  }
}

TEST_P(Conformance, RopeBothStylesPartialRotation) {
  for (auto style : {graph::RopeStyle::Adjacent, graph::RopeStyle::Halves}) {
    for (int n_rot : {18, 10}) {  // full head of 18 dims, and the first 10
      GraphCase c;
      c.inputs = {test::host_f32({4, 3, 18}, random_floats(4 * 3 * 18, 6)), test::host_i32({4}, {0, 1, 157, 3001})};
      c.build = [=](Graph&, auto&, auto& in) {
        return graph::rope(in[0], in[1], graph::Rope{n_rot, 10000.0f, 1.0f, style});
      };
      expect_matches_reference(c, 1e-5, 1e-5);
    }
  }
}

TEST_P(Conformance, RopeWithFrequencyFactors) {
  // Llama 3.1-style factors: 1 for high frequencies, 8 for low, smooth between.
  GraphCase c;
  c.constants = {test::host_f32({9}, {1, 1, 1.5f, 2, 3, 5, 8, 8, 8})};
  c.inputs = {test::host_f32({3, 2, 18}, random_floats(3 * 2 * 18, 61)), test::host_i32({3}, {5, 1001, 70000})};
  c.build = [](Graph&, auto& k, auto& in) {
    return graph::rope(in[0], in[1], graph::Rope{18, 500000.0f, 1.0f, graph::RopeStyle::Halves}, k[0]);
  };
  expect_matches_reference(c, 1e-5, 1e-5);
}

TEST_P(Conformance, ElementwiseOps) {
  const auto a = random_floats(6 * 45, 9, -4, 4), b = random_floats(6 * 45, 10, -4, 4);
  using Build = std::function<Value(Value, Value)>;
  const std::vector<std::pair<const char*, Build>> ops = {
      {"add", [](Value x, Value y) { return graph::add(x, y); }},
      {"mul", [](Value x, Value y) { return graph::mul(x, y); }},
      {"swiglu", [](Value x, Value y) { return graph::swiglu(x, y); }},
      {"scale", [](Value x, Value) { return graph::scale(x, -0.37f); }},
      {"softmax", [](Value x, Value) { return graph::softmax(x); }},
  };
  for (const auto& [op, build] : ops) {
    SCOPED_TRACE(op);
    GraphCase c;
    c.inputs = {test::host_f32({6, 45}, a), test::host_f32({6, 45}, b)};
    c.build = [build = build](Graph&, auto&, auto& in) { return build(in[0], in[1]); };
    expect_matches_reference(c, 1e-6, 1e-5);
  }
}

TEST_P(Conformance, SigmoidAndRowScaling) {
  GraphCase c;
  c.inputs = {test::host_f32({2, 3, 45}, random_floats(2 * 3 * 45, 14, -9, 9)),
              test::host_f32({2, 3, 1}, random_floats(6, 15, -2, 2))};
  c.build = [](Graph&, auto&, auto& in) { return graph::scale_rows(graph::sigmoid(in[0]), in[1]); };
  expect_matches_reference(c, 1e-6, 1e-5);
}

// Mixture of experts: 7 experts, top 2 (and top 3), odd token counts; expert
// weights in every type the model files use. Router probabilities come from a
// softmax so that they look like a real router's.
GraphCase moe_case(DType t, int64_t T, int32_t n_used, bool normalize, float scale, int64_t C = 64, int64_t F = 96) {
  const int64_t E = 7;  // C and F: whole blocks of every quantized type used with them
  auto experts = [&](int64_t rows, int64_t cols, uint32_t seed) {
    const auto f = random_floats(size_t(E * rows * cols), seed, -0.5f, 0.5f);
    return HostTensor{t, {E, rows, cols}, quant::quantize_rows(t, f.data(), E * rows, cols)};
  };
  GraphCase c;
  c.constants = {experts(F, C, 41), experts(F, C, 42), experts(C, F, 43)};
  c.inputs = {test::host_f32({T, C}, random_floats(size_t(T * C), 44)),
              test::host_f32({T, E}, random_floats(size_t(T * E), 45, -3, 3))};
  c.build = [=](Graph&, auto& k, auto& in) {
    return graph::moe_ffn(in[0], graph::softmax(in[1]), k[0], k[1], k[2], graph::MoeFfn{n_used, normalize, scale});
  };
  return c;
}

TEST_P(Conformance, MoeFfnEveryExpertType) {
  for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0}) {
    SCOPED_TRACE(name(t));
    expect_matches_reference(moe_case(t, 5, 2, true, 1.0f), 1e-5, 1e-4);   // Mixtral routing, a prefill
    expect_matches_reference(moe_case(t, 1, 2, true, 1.0f), 1e-5, 1e-4);   // a decode step
    expect_matches_reference(moe_case(t, 11, 3, false, 1.5f), 1e-5, 1e-4);  // unnormalised, scaled
  }
  // K-quants (the experts of Q4_K_M files) come in 256-element super-blocks.
  for (DType t : {DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(name(t));
    expect_matches_reference(moe_case(t, 5, 2, true, 1.0f, 256, 256), 1e-5, 1e-4);
  }
}

TEST_P(Conformance, BroadcastAddOfABias) {
  GraphCase c;
  c.constants = {test::host_f32({45}, random_floats(45, 11))};
  c.inputs = {test::host_f32({2, 3, 45}, random_floats(2 * 3 * 45, 12))};
  c.build = [](Graph&, auto& k, auto& in) { return graph::add(in[0], k[0]); };
  expect_matches_reference(c, 0, 0);  // one float addition: exact
}

TEST_P(Conformance, ViewsOfAFusedProjection) {
  // A fused [T, 3C] projection split into three [T, C] column views, as GLM's fused QKV.
  GraphCase c;
  c.inputs = {test::host_f32({5, 3 * 13}, random_floats(5 * 39, 13))};
  c.build = [](Graph&, auto&, auto& in) {
    Value gate = graph::slice(in[0], 1, 0, 13), up = graph::slice(in[0], 1, 13, 13);
    Value third = graph::slice(in[0], 1, 26, 13);
    return graph::add(graph::swiglu(gate, up), graph::scale(third, 2.0f));
  };
  expect_matches_reference(c, 1e-6, 1e-5);
}

// Two sequences share a paged cache: sequence 0 holds 3 tokens in block 4;
// sequence 1 decodes positions 103..104 through blocks {2, 0, 5, 1, 7, 3, 6}.
GraphCase attention_case(DType cache_type) {
  const int64_t Hq = 6, Hkv = 2, D = 20, bs = 16, blocks = 8, S = blocks * bs, T = 5;
  GraphCase c;
  const auto cache_init = [&](uint32_t seed) {
    const auto f = random_floats(size_t(S * Hkv * D), seed);
    return HostTensor{cache_type, {S, Hkv, D}, quant::quantize_rows(cache_type, f.data(), S * Hkv, D)};
  };
  c.constants = {cache_init(21), cache_init(22)};
  c.inputs = {
      test::host_f32({T, Hq, D}, random_floats(size_t(T * Hq * D), 23, -2, 2)),
      test::host_f32({T, Hkv, D}, random_floats(size_t(T * Hkv * D), 24)),
      test::host_f32({T, Hkv, D}, random_floats(size_t(T * Hkv * D), 25)),
      test::host_i32({T}, {0, 1, 2, 103, 104}),
      test::host_i32({T}, {0, 0, 0, 1, 1}),
      test::host_i32({2, 7}, {4, 0, 0, 0, 0, 0, 0, /**/ 2, 0, 5, 1, 7, 3, 6}),
  };
  // slots: seq 0 pos p -> block 4; seq 1 pos 103 -> block index 6 (id 6) offset 7.
  c.inputs.push_back(test::host_i32({T}, {4 * 16 + 0, 4 * 16 + 1, 4 * 16 + 2, 6 * 16 + 7, 6 * 16 + 8}));
  c.build = [](Graph&, auto& k, auto& in) {
    Value kc = graph::kv_store(k[0], in[1], in[6]);
    Value vc = graph::kv_store(k[1], in[2], in[6]);
    return graph::attention(in[0], kc, vc, in[3], in[4], in[5], graph::Attention{0.2236068f, 16});
  };
  return c;
}

TEST_P(Conformance, PagedAttentionF32Cache) { expect_matches_reference(attention_case(DType::F32), 1e-5, 1e-4); }
TEST_P(Conformance, PagedAttentionF16Cache) { expect_matches_reference(attention_case(DType::F16), 1e-5, 1e-4); }

// Grouped-query attention at a long context: 3 KV heads (odd) shared by
// groups of 4 query heads, head size 64, 700 cached keys over 44 blocks of a
// scrambled table. Decoding one token (its keys split across threads), and
// two sequences at once, one of them at its first token (fewer keys than
// the ranges a split would make).
GraphCase gqa_case(DType cache_type, std::vector<int32_t> pos, std::vector<int32_t> seq) {
  const int64_t Hq = 12, Hkv = 3, D = 64, bs = 16, blocks = 96, S = blocks * bs, T = int64_t(pos.size());
  GraphCase c;
  const auto cache_init = [&](uint32_t seed) {
    const auto f = random_floats(size_t(S * Hkv * D), seed);
    return HostTensor{cache_type, {S, Hkv, D}, quant::quantize_rows(cache_type, f.data(), S * Hkv, D)};
  };
  c.constants = {cache_init(31), cache_init(32)};
  std::vector<int32_t> table(2 * 48), slots;
  for (int64_t b = 0; b < 48; ++b) {
    table[size_t(b)] = int32_t((b * 29 + 3) % 48);                 // sequence 0: blocks 0..47, scrambled
    table[size_t(48 + b)] = int32_t(48 + (b * 11 + 7) % 48);       // sequence 1: blocks 48..95
  }
  for (int64_t t = 0; t < T; ++t) {
    const int32_t p = pos[size_t(t)];
    slots.push_back(table[size_t(seq[size_t(t)] * 48 + p / bs)] * int32_t(bs) + p % int32_t(bs));
  }
  c.inputs = {
      test::host_f32({T, Hq, D}, random_floats(size_t(T * Hq * D), 33, -2, 2)),
      test::host_f32({T, Hkv, D}, random_floats(size_t(T * Hkv * D), 34)),
      test::host_f32({T, Hkv, D}, random_floats(size_t(T * Hkv * D), 35)),
      test::host_i32({T}, pos),
      test::host_i32({T}, seq),
      test::host_i32({2, 48}, table),
      test::host_i32({T}, slots),
  };
  c.build = [](Graph&, auto& k, auto& in) {
    Value kc = graph::kv_store(k[0], in[1], in[6]);
    Value vc = graph::kv_store(k[1], in[2], in[6]);
    return graph::attention(in[0], kc, vc, in[3], in[4], in[5], graph::Attention{0.125f, 16});
  };
  return c;
}

TEST_P(Conformance, GroupedQueryAttentionLongContext) {
  for (DType t : {DType::F32, DType::F16}) {
    SCOPED_TRACE(name(t));
    expect_matches_reference(gqa_case(t, {699}, {0}), 1e-5, 1e-4);
    expect_matches_reference(gqa_case(t, {0, 699}, {1, 0}), 1e-5, 1e-4);
  }
}

TEST_P(Conformance, BadIndicesAreErrorsNotCrashes) {
  auto be = backend::create(GetParam());
  GraphCase c;
  c.constants = {weights(DType::F32, 4, 8, 1)};
  c.inputs = {test::host_i32({2}, {1, 4})};  // 4 is out of range
  c.build = [](Graph&, auto& k, auto& in) { return graph::get_rows(k[0], in[0]); };
  EXPECT_THROW(test::run_case(*be, c), Error);

  GraphCase a = attention_case(DType::F32);
  a.inputs[5] = test::host_i32({2, 7}, {4, 0, 0, 0, 0, 0, 0, 2, 0, 5, 1, 7, 3, 99});  // block 99 does not exist
  EXPECT_THROW(test::run_case(*be, a), Error);
  GraphCase s = attention_case(DType::F32);
  s.inputs[6] = test::host_i32({5}, {0, 1, 2, 3, 128});  // slot past the cache
  EXPECT_THROW(test::run_case(*be, s), Error);
}

std::vector<std::string> non_reference_backends() {
  std::vector<std::string> out;
  for (const auto& n : backend::backend_names())
    if (n != "reference") out.push_back(n);
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllBackends, Conformance, ::testing::ValuesIn(non_reference_backends()),
                         [](const auto& info) { return info.param; });

TEST(Registry, ListsBuiltinsAndRejectsUnknownNames) {
  const auto names = backend::backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "cpu"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "reference"), names.end());
  try {
    backend::create("tpu9000");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << "the message should list the known backends";
  }
}

}  // namespace
}  // namespace loom
