// The vector layer for x86-64 AVX-512 (F, BW, VL, DQ, VNNI): 16 float lanes,
// two 32-element quantization blocks per group, int8 dot products with
// vpdpbusd. Same contract as vec_scalar.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "loom/core/dtype.h"

namespace loom::backend::cpu::simd {

struct VecAvx512 {
  static constexpr const char* kName = "avx512";
  static constexpr int kLanes = 16;
  static constexpr int kGroup = 2;

  using F = __m512;
  using I = __m512i;  // 16 int32 lanes: 8 per block
  using B = __m512i;  // 64 bytes: two blocks

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float reduce(F v) { return _mm512_reduce_add_ps(v); }
  // Lane i = the sum of v[i], by halving: pairs of vectors fold their
  // 256-bit halves together, pairs of those their 128-bit quarters, then
  // two rounds of in-lane shuffles finish 4 x 4 sums per 128-bit lane. That
  // leaves the sum of input m at lane 4 (m % 4) + m / 4, so the inputs go in
  // transposed order.
  static F hsums(const F* v) {
    constexpr int kOrder[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
    F s[8], t[4];
    for (int i = 0; i < 8; ++i) {
      const F a = v[kOrder[2 * i]], b = v[kOrder[2 * i + 1]];
      s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int i = 0; i < 4; ++i)
      t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    const F a = pair_sums(t[0], t[1]), b = pair_sums(t[2], t[3]);
    return pair_sums(a, b);
  }
  // Within each 128-bit lane: [x0 + x1, x2 + x3, y0 + y1, y2 + y3].
  static F pair_sums(F x, F y) {
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static float reduce_max(F v) { return _mm512_reduce_max_ps(v); }
  static F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static void store_s8(int8_t* p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  static F exp2i(F n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static F load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store_f16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static F load_bf16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static float f16(uint16_t h) { return _cvtsh_ss(h); }

  static F block_scales(const float* s) {
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128 two = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)));  // unaligned-safe
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two));
  }
  static B load_s8(const int8_t* p) { return _mm512_loadu_si512(p); }
  static B q4_0_nibbles(const BlockQ4_0* b) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
    // bytes: [q0 | q1 | q0>>4 | q1>>4] then reorder 128-bit lanes to [lo0 hi0 lo1 hi1]
    const __m256i q = _mm256_set_m128i(q1, q0);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
    const __m512i m = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
    return _mm512_shuffle_i64x2(m, m, _MM_SHUFFLE(3, 1, 2, 0));
  }
  static B q8_0_values(const BlockQ8_0* b) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs));
    return _mm512_inserti64x4(_mm512_castsi256_si512(v0), v1, 1);
  }
  static I dot_u8s8(B u, B s) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s); }
  static I dot_s8s8(B a, B b) {
    const __m512i abs_a = _mm512_abs_epi8(a);
    // b with the sign of a: negate b where a < 0.
    const __mmask64 neg = _mm512_movepi8_mask(a);
    const __m512i sb = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
    return dot_u8s8(abs_a, sb);
  }
  static I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
  static F to_f32(I v) { return _mm512_cvtepi32_ps(v); }
  // Prepared operands for tiled products: a weight block group prepared
  // once meets NR activation groups, an activation group meets MR weights.
  // Q4_0 x Q8: nibbles (u8) . x (s8), minus 8 * sum(x) folded into the start value.
  struct Q4W {
    B u;
  };
  struct Q4X {
    B x;
    I neg_off;
  };
  static Q4W prep_q4_w(const BlockQ4_0* b) { return {q4_0_nibbles(b)}; }
  static Q4X prep_q4_x(B x) {
    return {x, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), x))};
  }
  static I dot_q4(const Q4W& w, const Q4X& x) { return _mm512_dpbusd_epi32(x.neg_off, w.u, x.x); }
  // Q8_0 x Q8: (x + 128) as u8 . w (s8), minus 128 * sum(w) folded into the start value.
  struct Q8W {
    B w;
    I neg_off;
  };
  struct Q8X {
    B xu;
  };
  static Q8W prep_q8_w(const BlockQ8_0* b) {
    const B w = q8_0_values(b);
    return {w, _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), w))};
  }
  static Q8X prep_q8_x(B x) { return {_mm512_xor_si512(x, _mm512_set1_epi8(char(0x80)))}; }
  static I dot_q8(const Q8W& w, const Q8X& x) { return _mm512_dpbusd_epi32(w.neg_off, x.xu, w.w); }
  // K-quant helpers. 32 bytes of Q4_K nibbles -> both sub-blocks in one group.
  // The two sub-blocks of 32 bytes of Q4_K nibbles, as 2 / kGroup groups.
  struct Nibbles {
    B part[2 / kGroup];
  };
  static Nibbles q4k_nibbles(const uint8_t* q) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i m = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return {_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)};
  }
  // Q6_K values 0..63 of quarters k, k + 1 (k even) of a half block.
  static B q6k_values(const uint8_t* ql, const uint8_t* qh, int k) {
    const __m512i lo = _mm512_loadu_si512(ql);  // quarter k from ql[0..32), k + 1 from ql[32..64)
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    const __m512i nib = k < 2 ? _mm512_and_si512(lo, m4) : _mm512_and_si512(_mm512_srli_epi16(lo, 4), m4);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    const __m512i hh = _mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1);
    // Quarter k takes bits 2k, 2k+1 of qh; quarter k + 1 bits 2k+2, 2k+3.
    const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(short(2 * k)), _mm256_set1_epi16(short(2 * k + 2)), 1);
    const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hh, shift), m2);
    return _mm512_or_si512(nib, _mm512_slli_epi16(hb, 4));
  }
  static F half_block_scales(const float* s) {
    const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s)));
  }
  static I lane_sums(B x, int mult) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(mult)), x); }
  static I sub_i(I a, I b) { return _mm512_sub_epi32(a, b); }
  // Decode-path helpers (see vec_avx2.h). The two blocks' scales are built in
  // registers: a round trip through memory would stall on store forwarding.
  static I load_i(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store_i(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
  static I dot_u8s8_acc(I acc, B u, B s) { return _mm512_dpbusd_epi32(acc, u, s); }
  template <typename Block>
  static F scales_q(const Block* w, const float* dx) {
    const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(w[0].d), w[1].d, 1);
    const __m128 dxv = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(dx)));
    const __m128 two = _mm_mul_ps(_mm_cvtph_ps(h), dxv);
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two));
  }
  // Interleaved Q4_0 helpers (contract in vec_scalar.h).
  static B nib_lo(B w) { return _mm512_and_si512(w, _mm512_set1_epi8(0x0f)); }
  static B nib_hi(B w) { return _mm512_and_si512(_mm512_srli_epi16(w, 4), _mm512_set1_epi8(0x0f)); }
  static B bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static I set1_i(int32_t x) { return _mm512_set1_epi32(x); }
};

}  // namespace loom::backend::cpu::simd
