// The vector layer for x86-64 AVX2 + FMA + F16C: 8 float lanes, and one
// 32-element quantization block per group. Kernels (kernels_impl.h) are
// written once against this interface; see vec_scalar.h for the contract.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "loom/core/dtype.h"

namespace loom::backend::cpu::simd {

struct VecAvx2 {
  static constexpr const char* kName = "avx2";
  static constexpr int kLanes = 8;   // floats per F
  static constexpr int kGroup = 1;   // 32-element blocks per B / I

  using F = __m256;
  using I = __m256i;  // 8 int32 lanes: lanes of one block
  using B = __m256i;  // 32 bytes: one block

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static float reduce(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Lane i = the sum of v[i]: pairwise sums of pairs of vectors twice, then
  // the low 128-bit halves (sums of lanes 0-3) plus the high ones.
  static F hsums(const F* v) {
    const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static float reduce_max(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  static F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void store_s8(int8_t* p, F v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w, w));
  }
  static F exp2i(F n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static F load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store_f16(uint16_t* p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static F load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float f16(uint16_t h) { return _cvtsh_ss(h); }

  // Group scale vector: every lane of block g holds s[g].
  static F block_scales(const float* s) { return _mm256_set1_ps(s[0]); }
  static B load_s8(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // Q4_0 nibbles as unsigned bytes 0..15 in element order (low nibbles are elements 0..15).
  static B q4_0_nibbles(const BlockQ4_0* b) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
  }
  static B q8_0_values(const BlockQ8_0* b) { return load_s8(b->qs); }
  // Sums of 4 adjacent products u8 * s8 into int32 lanes.
  static I dot_u8s8(B u, B s) {
    // Pairs summed in int16: exact while u <= 128 and |s| <= 127 (2 * 128 * 127 < 32768).
    const __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  }
  // Sums of 4 adjacent products s8 * s8 (sign moved onto the second operand).
  static I dot_s8s8(B a, B b) { return dot_u8s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)); }
  static I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
  static F to_f32(I v) { return _mm256_cvtepi32_ps(v); }
  // Prepared operands for tiled products (see vec_avx512.h); here the plain
  // block dots, with the Q4_0 offset applied after the dot.
  struct Q4W {
    B u;
  };
  struct Q4X {
    B x;
    I neg_off;
  };
  static Q4W prep_q4_w(const BlockQ4_0* b) { return {q4_0_nibbles(b)}; }
  static Q4X prep_q4_x(B x) {
    return {x, _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8s8(_mm256_set1_epi8(8), x))};
  }
  static I dot_q4(const Q4W& w, const Q4X& x) { return add_i(dot_u8s8(w.u, x.x), x.neg_off); }
  struct Q8W {
    B w;
  };
  struct Q8X {
    B x;
  };
  static Q8W prep_q8_w(const BlockQ8_0* b) { return {q8_0_values(b)}; }
  static Q8X prep_q8_x(B x) { return {x}; }
  static I dot_q8(const Q8W& w, const Q8X& x) { return dot_s8s8(w.w, x.x); }
  // K-quant helpers. 32 bytes of Q4_K nibbles -> sub-blocks (low, high).
  // The two sub-blocks of 32 bytes of Q4_K nibbles, as 2 / kGroup groups.
  struct Nibbles {
    B part[2 / kGroup];
  };
  static Nibbles q4k_nibbles(const uint8_t* q) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i m = _mm256_set1_epi8(0x0f);
    return {_mm256_and_si256(v, m), _mm256_and_si256(_mm256_srli_epi16(v, 4), m)};
  }
  // Q6_K values 0..63 of quarter k (32 elements) of a half block.
  static B q6k_values(const uint8_t* ql, const uint8_t* qh, int k) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32 * (k & 1)));
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i nib = k < 2 ? _mm256_and_si256(lo, m4) : _mm256_and_si256(_mm256_srli_epi16(lo, 4), m4);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    const __m256i hb = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * k)), m2);
    return _mm256_or_si256(nib, _mm256_slli_epi16(hb, 4));
  }
  // Lanes 0-3 of block g hold s[2g], lanes 4-7 hold s[2g + 1].
  static F half_block_scales(const float* s) { return _mm256_set_m128(_mm_set1_ps(s[1]), _mm_set1_ps(s[0])); }
  // mult * (sum of the 4 bytes of each lane).
  static I lane_sums(B x, int mult) { return dot_u8s8(_mm256_set1_epi8(char(mult)), x); }
  static I sub_i(I a, I b) { return _mm256_sub_epi32(a, b); }
  // Decode-path helpers: 8 int32 lanes from memory, a u8 x s8 dot added to a
  // start value, and the group scale d_w * d_x of a weight block (its F16 d first).
  static I load_i(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store_i(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I dot_u8s8_acc(I acc, B u, B s) { return _mm256_add_epi32(acc, dot_u8s8(u, s)); }
  template <typename Block>
  static F scales_q(const Block* w, const float* dx) { return _mm256_set1_ps(_cvtsh_ss(w->d) * dx[0]); }
  // Interleaved Q4_0 helpers (contract in vec_scalar.h).
  static B nib_lo(B w) { return _mm256_and_si256(w, _mm256_set1_epi8(0x0f)); }
  static B nib_hi(B w) { return _mm256_and_si256(_mm256_srli_epi16(w, 4), _mm256_set1_epi8(0x0f)); }
  static B bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static I set1_i(int32_t x) { return _mm256_set1_epi32(x); }
};

}  // namespace loom::backend::cpu::simd
