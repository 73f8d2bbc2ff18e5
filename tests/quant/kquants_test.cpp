// K-quant formats: the bit layout decoded by hand, and the quantizers'
// errors against bounds worked out from the format's step sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "loom/core/dtype.h"
#include "loom/core/half.h"
#include "loom/quant/quantize.h"

namespace loom {
namespace {

// A Q4_K super-block written byte by byte; the expected values follow from
// x = d * sc_j * q - dmin * m_j with the 6-bit packing described in dtype.h.
TEST(Q4K, DecodesTheBitLayoutByHand) {
  BlockQ4_K b{};
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  // sub-block 0: sc = 3, m = 2; sub-block 1: sc = 1, m = 0;
  // sub-block 5: sc = 37 = 0b100101 (low 4 bits 5 in scales[9], high 2 bits 2 in scales[1] >> 6),
  //              m = 50 = 0b110010 (low 4 bits 2 in scales[9] >> 4, high 2 bits 3 in scales[5] >> 6).
  b.scales[0] = 3;
  b.scales[4] = 2;
  b.scales[1] = uint8_t(1 | (2 << 6));
  b.scales[5] = uint8_t(0 | (3 << 6));
  b.scales[9] = uint8_t(5 | (2 << 4));
  b.qs[0] = 0x7a;   // element 0: low nibble 10 (sub-block 0); element 32: high nibble 7 (sub-block 1)
  b.qs[64 + 5] = 0x90;  // element 128+5 (sub-block 4): 0; element 160+5 (sub-block 5): 9
  std::vector<float> y(256);
  dequantize_row(DType::Q4_K, &b, y.data(), 256);
  EXPECT_FLOAT_EQ(y[0], 0.5f * 3 * 10 - 0.25f * 2);  // 14.5
  EXPECT_FLOAT_EQ(y[1], -0.5f);                      // q = 0: just -dmin * m
  EXPECT_FLOAT_EQ(y[32], 0.5f * 1 * 7 - 0.0f);       // 3.5
  EXPECT_FLOAT_EQ(y[165], 0.5f * 37 * 9 - 0.25f * 50);  // 154
}

// A Q6_K super-block: element 128h + 32k + l has low bits in ql[64h + l + 32(k&1)]
// (nibble k < 2 ? low : high) and high bits 2k..2k+1 of qh[32h + l]; x = d * sc[e/16] * (q - 32).
TEST(Q6K, DecodesTheBitLayoutByHand) {
  BlockQ6_K b{};
  b.d = f32_to_f16(0.125f);
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j - 8);
  // element 0 (h0 k0 l0): q = 0x3 | (2 << 4) = 35 -> 0.125 * (-8) * 3 = -3
  b.ql[0] = 0x03;
  b.qh[0] = 0x02;
  // element 200 = 128 + 64 + 8 (h1 k2 l8): low bits = high nibble of ql[64+8] = 0xf, high bits = bits 4-5 of qh[32+8] = 3
  // q = 0xf | 3 << 4 = 63 -> 0.125 * scales[12] (4) * 31 = 15.5
  b.ql[72] = 0xf0;
  b.qh[40] = 0x30;
  std::vector<float> y(256);
  dequantize_row(DType::Q6_K, &b, y.data(), 256);
  EXPECT_FLOAT_EQ(y[0], -3.0f);
  EXPECT_FLOAT_EQ(y[200], 15.5f);
  // Every other element of sub-block 1 (elements 16..31) has q = 0 -> 0.125 * (-7) * (-32) = 28.
  EXPECT_FLOAT_EQ(y[17], 28.0f);
}

std::vector<float> uniform(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng() >> 8) / 8388608.0f - 1.0f;  // [-1, 1)
  return v;
}

double rmse(DType t, const std::vector<float>& x) {
  const auto q = quant::quantize_rows(t, x.data(), 1, int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return std::sqrt(e / double(x.size()));
}

// Uniform(-1, 1) values: a 4-bit code with a min spans a sub-block's range
// (about 2) in 15 steps, so rounding alone gives RMSE ~ (2/15)/sqrt(12) = 0.0385;
// 6 bits spanning 63 steps give (2/63)/sqrt(12) = 0.0092. The quantized
// scales add a little; the bounds allow 15%.
TEST(KQuants, RoundTripErrorIsTheRoundingErrorOfTheFormat) {
  const auto x = uniform(256 * 16, 1);
  EXPECT_LT(rmse(DType::Q4_K, x), 0.0385 * 1.15);
  EXPECT_LT(rmse(DType::Q6_K, x), 0.0092 * 1.15);
  // Finer formats are more accurate: Q6_K beats Q4_K by about the 48/15 step ratio.
  EXPECT_LT(rmse(DType::Q6_K, x) * 3, rmse(DType::Q4_K, x));
}

TEST(KQuants, ZerosAndConstantsSurvive) {
  std::vector<float> zeros(256, 0.0f), ones(256, 0.75f), neg(256, -2.0f);
  EXPECT_EQ(rmse(DType::Q4_K, zeros), 0.0);
  EXPECT_EQ(rmse(DType::Q6_K, zeros), 0.0);
  EXPECT_LT(rmse(DType::Q4_K, ones), 1e-3);
  EXPECT_LT(rmse(DType::Q4_K, neg), 1e-2);  // x = 0 * q - m with m = 2 (f16-exact)
  EXPECT_LT(rmse(DType::Q6_K, ones), 1e-2);
}

}  // namespace
}  // namespace loom
