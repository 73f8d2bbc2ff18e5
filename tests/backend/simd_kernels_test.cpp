// The SIMD kernels of every instruction set this CPU can run, against float64
// sums of the same (dequantized) numbers. Integer block dots are exact, so
// the only difference allowed is float rounding of the accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/backend_harness.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/half.h"
#include "loom/quant/quantize.h"

namespace loom::backend::cpu::simd {
namespace {

struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> d, s;
  std::vector<int32_t> o8;
  QRow row() const { return {q.data(), d.data(), s.data(), o8.data()}; }
};

Quantized quantize(const Kernels& k, const std::vector<float>& x) {
  Quantized r{std::vector<int8_t>(x.size()), std::vector<float>(x.size() / 32), std::vector<float>(x.size() / 32),
              std::vector<int32_t>(x.size() / 4)};
  k.quantize_row(x.data(), int64_t(x.size()), r.q.data(), r.d.data(), r.s.data(), r.o8.data());
  return r;
}

class SimdKernels : public ::testing::TestWithParam<const Kernels*> {};

TEST_P(SimdKernels, QuantizeRowFollowsTheQ8Definition) {
  const Kernels& k = *GetParam();
  const auto x = test::random_floats(7 * 32, 1, -3, 3);
  const Quantized qx = quantize(k, x);
  for (int b = 0; b < 7; ++b) {
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(x[size_t(b * 32 + j)])));
    EXPECT_NEAR(qx.d[size_t(b)], amax / 127, 1e-7 * amax);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const double want = x[size_t(b * 32 + j)] / (amax / 127);
      EXPECT_LE(std::fabs(qx.q[size_t(b * 32 + j)] - want), 0.5 + 1e-4);  // rounded to nearest
      sum += qx.q[size_t(b * 32 + j)];
    }
    EXPECT_NEAR(qx.s[size_t(b)], qx.d[size_t(b)] * sum, 1e-5);
    for (int l = 0; l < 8; ++l) {  // -8 * the sum of each 4 consecutive values
      const int8_t* q4 = &qx.q[size_t(b * 32 + 4 * l)];
      EXPECT_EQ(qx.o8[size_t(b * 8 + l)], -8 * (q4[0] + q4[1] + q4[2] + q4[3]));
    }
  }
}

TEST_P(SimdKernels, QuantizedDotsEqualFloat64SumsOfTheSameNumbers) {
  const Kernels& k = *GetParam();
  for (int64_t nb : {1, 2, 3, 7, 64}) {  // odd counts leave a remainder after 2-block groups
    const int64_t n = nb * 32;
    const auto x = test::random_floats(size_t(n), 2, -2, 2);
    const auto wf = test::random_floats(size_t(n), 3, -1, 1);
    const Quantized qx = quantize(k, x);
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
      const auto w = quant::quantize_rows(t, wf.data(), 1, n);
      std::vector<float> wd(static_cast<size_t>(n));
      dequantize_row(t, w.data(), wd.data(), n);
      double want = 0;
      for (int64_t i = 0; i < n; ++i) want += double(wd[size_t(i)]) * double(qx.q[size_t(i)]) * qx.d[size_t(i / 32)];
      const float got = t == DType::Q4_0 ? k.dot_q4_0(reinterpret_cast<const BlockQ4_0*>(w.data()), qx.row(), nb)
                                         : k.dot_q8_0(reinterpret_cast<const BlockQ8_0*>(w.data()), qx.row(), nb);
      EXPECT_NEAR(got, want, 1e-5 * (1 + std::fabs(want)) * std::sqrt(double(nb))) << name(t) << " nb " << nb;
    }
  }
}

TEST_P(SimdKernels, KQuantDotsEqualFloat64SumsOfTheSameNumbers) {
  const Kernels& k = *GetParam();
  for (int64_t nsb : {1, 3}) {
    const int64_t n = nsb * 256;
    const auto x = test::random_floats(size_t(n), 6, -2, 2);
    const auto wf = test::random_floats(size_t(n), 7, -1, 1);
    const Quantized qx = quantize(k, x);
    for (DType t : {DType::Q4_K, DType::Q6_K}) {
      const auto w = quant::quantize_rows(t, wf.data(), 1, n);
      std::vector<float> wd(static_cast<size_t>(n));
      dequantize_row(t, w.data(), wd.data(), n);
      double want = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        want += double(wd[size_t(i)]) * double(qx.q[size_t(i)]) * qx.d[size_t(i / 32)];
        mag += std::fabs(double(wd[size_t(i)]) * double(qx.q[size_t(i)]) * qx.d[size_t(i / 32)]);
      }
      const float got = t == DType::Q4_K ? k.dot_q4_k(reinterpret_cast<const BlockQ4_K*>(w.data()), qx.row(), nsb)
                                         : k.dot_q6_k(reinterpret_cast<const BlockQ6_K*>(w.data()), qx.row(), nsb);
      EXPECT_NEAR(got, want, 1e-6 * mag + 1e-6) << name(t) << " nsb " << nsb;
    }
  }
}

TEST_P(SimdKernels, TiledKQuantProductsEqualTheDotKernels) {
  const Kernels& k = *GetParam();
  const int64_t m = 6, n = 5, nsb = 2, K = nsb * 256;
  std::vector<Quantized> xq;
  std::vector<QRow> rows;
  for (int64_t j = 0; j < n; ++j) xq.push_back(quantize(k, test::random_floats(size_t(K), uint32_t(30 + j), -2, 2)));
  for (const auto& q : xq) rows.push_back(q.row());
  const auto wf = test::random_floats(size_t(m * K), 40, -1, 1);
  for (DType t : {DType::Q4_K, DType::Q6_K}) {
    const auto w = quant::quantize_rows(t, wf.data(), m, K);
    const int64_t stride = int64_t(row_bytes(t, K));
    std::vector<float> y(static_cast<size_t>(m * n));
    (t == DType::Q4_K ? k.gemm_q4_k : k.gemm_q6_k)(w.data(), stride, m, rows.data(), n, K / 32, y.data(), m);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const std::byte* wr = w.data() + i * stride;
        const float want = t == DType::Q4_K ? k.dot_q4_k(reinterpret_cast<const BlockQ4_K*>(wr), rows[size_t(j)], nsb)
                                            : k.dot_q6_k(reinterpret_cast<const BlockQ6_K*>(wr), rows[size_t(j)], nsb);
        EXPECT_NEAR(y[size_t(j * m + i)], want, 1e-4 * (1 + std::fabs(want))) << name(t) << " (" << i << "," << j << ")";
      }
  }
}

TEST_P(SimdKernels, FloatDotsAndAxpyEqualFloat64) {
  const Kernels& k = *GetParam();
  for (int64_t n : {1, 7, 8, 31, 67, 200}) {
    const auto x = test::random_floats(size_t(n), 4, -2, 2);
    const auto wf = test::random_floats(size_t(n), 5, -1, 1);
    std::vector<uint16_t> h(static_cast<size_t>(n)), bf(static_cast<size_t>(n));
    double want32 = 0, want16 = 0, wantbf = 0;
    for (int64_t i = 0; i < n; ++i) {
      h[size_t(i)] = f32_to_f16(wf[size_t(i)]);
      bf[size_t(i)] = f32_to_bf16(wf[size_t(i)]);
      want32 += double(wf[size_t(i)]) * x[size_t(i)];
      want16 += double(f16_to_f32(h[size_t(i)])) * x[size_t(i)];
      wantbf += double(bf16_to_f32(bf[size_t(i)])) * x[size_t(i)];
    }
    const double tol = 1e-5 * std::sqrt(double(n));
    EXPECT_NEAR(k.dot_f32(wf.data(), x.data(), n), want32, tol) << n;
    EXPECT_NEAR(k.dot_f16(h.data(), x.data(), n), want16, tol) << n;
    EXPECT_NEAR(k.dot_bf16(bf.data(), x.data(), n), wantbf, tol) << n;
    std::vector<float> y1(x);
    k.axpy_f32(0.7f, wf.data(), y1.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y1[size_t(i)], double(x[size_t(i)]) + 0.7 * wf[size_t(i)], 1e-6);
  }
}

// The tiled kernels compute the same sums as the dot kernels (odd tile edges,
// odd block counts), up to float rounding of the accumulation order.
TEST_P(SimdKernels, TiledProductsEqualTheDotKernels) {
  const Kernels& k = *GetParam();
  const int64_t m = 7, n = 6;
  for (int64_t nb : {1, 3, 8}) {
    const int64_t K = nb * 32;
    std::vector<Quantized> xq;
    std::vector<std::vector<float>> xf;
    std::vector<QRow> rows;
    std::vector<const float*> xptr;
    for (int64_t j = 0; j < n; ++j) {
      xf.push_back(test::random_floats(size_t(K), uint32_t(10 + j), -2, 2));
      xq.push_back(quantize(k, xf.back()));
    }
    for (int64_t j = 0; j < n; ++j) {
      rows.push_back(xq[size_t(j)].row());
      xptr.push_back(xf[size_t(j)].data());
    }
    const auto wf = test::random_floats(size_t(m * K), 20, -1, 1);
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::F32, DType::F16, DType::BF16}) {
      const auto w = quant::quantize_rows(t, wf.data(), m, K);
      const int64_t stride = int64_t(row_bytes(t, K));
      std::vector<float> y(static_cast<size_t>(m * n), -1.0f);
      switch (t) {
        case DType::Q4_0: k.gemm_q4_0(w.data(), stride, m, rows.data(), n, nb, y.data(), m); break;
        case DType::Q8_0: k.gemm_q8_0(w.data(), stride, m, rows.data(), n, nb, y.data(), m); break;
        case DType::F32: k.gemm_f32(w.data(), stride, m, xptr.data(), n, K, y.data(), m); break;
        case DType::F16: k.gemm_f16(w.data(), stride, m, xptr.data(), n, K, y.data(), m); break;
        default: k.gemm_bf16(w.data(), stride, m, xptr.data(), n, K, y.data(), m); break;
      }
      for (int64_t i = 0; i < m; ++i) {
        const std::byte* wr = w.data() + i * stride;
        for (int64_t j = 0; j < n; ++j) {
          float want;
          switch (t) {
            case DType::Q4_0: want = k.dot_q4_0(reinterpret_cast<const BlockQ4_0*>(wr), rows[size_t(j)], nb); break;
            case DType::Q8_0: want = k.dot_q8_0(reinterpret_cast<const BlockQ8_0*>(wr), rows[size_t(j)], nb); break;
            case DType::F32: want = k.dot_f32(reinterpret_cast<const float*>(wr), xptr[size_t(j)], K); break;
            case DType::F16: want = k.dot_f16(reinterpret_cast<const uint16_t*>(wr), xptr[size_t(j)], K); break;
            default: want = k.dot_bf16(reinterpret_cast<const uint16_t*>(wr), xptr[size_t(j)], K); break;
          }
          EXPECT_NEAR(y[size_t(j * m + i)], want, 1e-5 * (1 + std::fabs(want)) * std::sqrt(double(K)))
              << name(t) << " nb " << nb << " (" << i << "," << j << ")";
        }
      }
    }
  }
}

// The interleaved Q4_0 layout (16 rows per group) against the plain dot
// kernel on the original rows: same integers, only the float summation order
// may differ.
TEST_P(SimdKernels, InterleavedQ4_0EqualsTheDotKernel) {
  const Kernels& k = *GetParam();
  const int64_t groups = 2, m = groups * kPackRows;
  for (int64_t nb : {1, 3, 8}) {
    const int64_t K = nb * 32;
    const auto wf = test::random_floats(size_t(m * K), 31, -1, 1);
    const auto w = quant::quantize_rows(DType::Q4_0, wf.data(), m, K);
    std::vector<std::byte> packed(size_t(groups * packed_q4_0x16_group_bytes(nb)));
    pack_q4_0x16(reinterpret_cast<const BlockQ4_0*>(w.data()), groups, nb, packed.data());
    for (int64_t n : {1, 3, 9}) {
      std::vector<Quantized> xq;
      std::vector<std::vector<int32_t>> ob;
      std::vector<QRow> rows;
      for (int64_t j = 0; j < n; ++j) {
        xq.push_back(quantize(k, test::random_floats(size_t(K), uint32_t(40 + j), -2, 2)));
        ob.emplace_back(static_cast<size_t>(nb));
        for (int64_t b = 0; b < nb; ++b) {  // -8 * the sum of the block, from the definition
          int32_t sum = 0;
          for (int i = 0; i < 32; ++i) sum += xq.back().q[size_t(b * 32 + i)];
          ob.back()[size_t(b)] = -8 * sum;
        }
      }
      for (int64_t j = 0; j < n; ++j) {
        rows.push_back(xq[size_t(j)].row());
        rows.back().ob = ob[size_t(j)].data();
      }
      std::vector<float> y(static_cast<size_t>(n * m), -1.0f);
      if (n == 1)
        k.gemv_q4_0x16(packed.data(), groups, nb, rows[0], y.data(), packed.data() + packed.size());
      else
        k.gemm_q4_0x16(packed.data(), groups, rows.data(), n, nb, y.data(), m);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const auto* wr = reinterpret_cast<const BlockQ4_0*>(w.data() + size_t(i) * row_bytes(DType::Q4_0, K));
          const float want = k.dot_q4_0(wr, rows[size_t(j)], nb);
          EXPECT_NEAR(y[size_t(j * m + i)], want, 1e-5 * (1 + std::fabs(want)) * std::sqrt(double(K)))
              << "nb " << nb << " n " << n << " (" << i << "," << j << ")";
        }
    }
  }
}

// The vectorised e^x against float64 exp: within 2e-7 relative wherever the
// result is a normal float (2 ulp at most), within the rounding of the
// smallest denormal below that, exactly 0 far below, exactly 1 at 0.
TEST_P(SimdKernels, ExpEqualsFloat64Exp) {
  const Kernels& k = *GetParam();
  std::vector<float> x;
  for (int i = 0; i <= 2000000; ++i) x.push_back(-88.0f + 88.0f * float(i) / 2000000);  // [-88, 0]
  for (int i = 0; i <= 200000; ++i) x.push_back(88.0f * float(i) / 200000);             // [0, 88]
  const auto r = test::random_floats(100003, 9, -104, 88);  // an odd count: the tail of a vector too
  x.insert(x.end(), r.begin(), r.end());
  for (float v : {-0.0f, 1e-8f, -1e-8f, -87.33655f, -87.5f, -103.0f}) x.push_back(v);
  std::vector<float> y(x.size());
  k.exp_f32(x.data(), y.data(), int64_t(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    if (want >= 0x1p-126) {
      worst = std::max(worst, std::fabs(y[i] - want) / want);
    } else {
      ASSERT_LE(std::fabs(y[i] - want), 0x1p-149) << "x = " << x[i];
    }
  }
  EXPECT_LT(worst, 2e-7);
  const std::vector<float> edge = {0.0f, -105.0f, -1000.0f, -INFINITY};
  std::vector<float> ye(edge.size());
  k.exp_f32(edge.data(), ye.data(), int64_t(edge.size()));
  EXPECT_EQ(ye[0], 1.0f);
  EXPECT_EQ(ye[1], 0.0f);
  EXPECT_EQ(ye[2], 0.0f);
  EXPECT_EQ(ye[3], 0.0f);
}

// SwiGLU's g * sigmoid(g) * u against float64, over the range activations
// take (an odd count: the vector tail too) and far into both saturations.
TEST_P(SimdKernels, SwigluEqualsFloat64) {
  const Kernels& k = *GetParam();
  auto g = test::random_floats(20001, 11, -30, 30);
  const auto u = test::random_floats(g.size() + 8, 12, -3, 3);
  for (float v : {0.0f, -0.0f, 1e-6f, -87.0f, -95.0f, 89.0f, 200.0f, -200.0f}) g.push_back(v);
  std::vector<float> o(g.size());
  k.swiglu_f32(g.data(), u.data(), o.data(), int64_t(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * double(u[i]);
    // A few roundings of relative 2^-24 each; saturated tails differ only below 1e-30.
    EXPECT_NEAR(o[i], want, 1e-6 * std::fabs(want) + 1e-30) << "g = " << g[i] << ", u = " << u[i];
  }
}

// The attend kernels against a float64 softmax over the same (F16-rounded)
// keys and values: groups of 1, 3 and 8 heads, head sizes that are and are
// not whole vectors, key ranges that start mid-block and cross many blocks.
TEST_P(SimdKernels, AttendEqualsFloat64Softmax) {
  const Kernels& k = *GetParam();
  const int64_t Hkv = 3, bs = 16, blocks = 50;
  for (DType t : {DType::F32, DType::F16}) {
    for (int64_t D : {64, 128, 20}) {
      for (int64_t g : {1, 3, 8}) {
        const int64_t slots = blocks * bs, esize = t == DType::F16 ? 2 : 4;
        const auto kf = test::random_floats(size_t(slots * Hkv * D), 51, -1, 1);
        const auto vf = test::random_floats(size_t(slots * Hkv * D), 52, -1, 1);
        std::vector<std::byte> kc(kf.size() * size_t(esize)), vc(kc.size());
        std::vector<double> kd(kf.size()), vd(vf.size());  // the values the kernel sees
        for (size_t i = 0; i < kf.size(); ++i) {
          if (t == DType::F16) {
            const uint16_t hk = f32_to_f16(kf[i]), hv = f32_to_f16(vf[i]);
            std::memcpy(kc.data() + 2 * i, &hk, 2);
            std::memcpy(vc.data() + 2 * i, &hv, 2);
            kd[i] = f16_to_f32(hk);
            vd[i] = f16_to_f32(hv);
          } else {
            std::memcpy(kc.data() + 4 * i, &kf[i], 4);
            std::memcpy(vc.data() + 4 * i, &vf[i], 4);
            kd[i] = kf[i];
            vd[i] = vf[i];
          }
        }
        std::vector<int32_t> table(static_cast<size_t>(blocks));
        for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t((b * 17 + 5) % blocks);
        const auto q = test::random_floats(size_t(g * D), 53, -3, 3);  // large enough for peaked softmaxes
        const int64_t kvh = 1, j0 = 37, j1 = 777;
        const float scale = 1.0f / std::sqrt(float(D));
        AttendArgs a{kc.data() + kvh * D * esize, vc.data() + kvh * D * esize, Hkv * D * esize, table.data(), bs,
                     q.data(), g, D, scale, j0, j1};
        std::vector<float> m(static_cast<size_t>(g)), l(static_cast<size_t>(g)), o(static_cast<size_t>(g * D));
        std::vector<float> scratch(size_t(attend_scratch_floats(g, D)));
        (t == DType::F16 ? k.attend_f16 : k.attend_f32)(a, m.data(), l.data(), o.data(), scratch.data());
        for (int64_t h = 0; h < g; ++h) {
          SCOPED_TRACE(std::string(name(t)) + " D " + std::to_string(D) + " g " + std::to_string(g) + " head " +
                       std::to_string(h));
          std::vector<double> s;
          double mx = -INFINITY;
          for (int64_t j = j0; j < j1; ++j) {
            const int64_t row = (int64_t(table[size_t(j / bs)]) * bs + j % bs) * Hkv + kvh;
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += double(q[size_t(h * D + d)]) * kd[size_t(row * D + d)];
            s.push_back(dot * scale);
            mx = std::max(mx, s.back());
          }
          double sum = 0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          EXPECT_NEAR(m[size_t(h)], mx, 1e-5 * (1 + std::fabs(mx)));
          EXPECT_NEAR(l[size_t(h)] * std::exp(double(m[size_t(h)]) - mx), sum, 1e-5 * sum);
          for (int64_t d = 0; d < D; ++d) {
            double want = 0;
            for (int64_t j = j0; j < j1; ++j) {
              const int64_t row = (int64_t(table[size_t(j / bs)]) * bs + j % bs) * Hkv + kvh;
              want += s[size_t(j - j0)] / sum * vd[size_t(row * D + d)];
            }
            EXPECT_NEAR(o[size_t(h * D + d)] / l[size_t(h)], want, 1e-5) << "d " << d;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaOfThisCpu, SimdKernels, ::testing::ValuesIn(available_kernels()),
                         [](const auto& info) {
                           std::string n = info.param->name;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace loom::backend::cpu::simd
