// The vector layer for AArch64 NEON (with the dotprod extension when
// LOOM_NEON_DOTPROD is defined): F is a pair of float32x4 (8 lanes), one
// 32-element block per group. Same contract as vec_scalar.h.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "loom/core/dtype.h"

namespace loom::backend::cpu::simd {

// This header is compiled twice (kernels_neon.cpp, kernels_neon_dot.cpp) into
// different bodies of the same inline functions, so each build gets its own
// namespace. Under one name the linker keeps one body for both: at -O0 the
// dotprod kernels ran the plain NEON dot, and the other pick would run vdot
// on CPUs without dotprod.
#if defined(LOOM_NEON_DOTPROD)
namespace neon_dotprod {
#else
namespace neon {
#endif

struct VecNeon {
#if defined(LOOM_NEON_DOTPROD)
  static constexpr const char* kName = "neon-dotprod";
#else
  static constexpr const char* kName = "neon";
#endif
  static constexpr int kLanes = 8;
  static constexpr int kGroup = 1;

  struct F {
    float32x4_t a, b;
  };
  struct I {
    int32x4_t a, b;
  };
  struct B {
    int8x16_t a, b;
  };

  static F zero() { return {vdupq_n_f32(0), vdupq_n_f32(0)}; }
  static F set1(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static F load(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  static void store(float* p, F v) {
    vst1q_f32(p, v.a);
    vst1q_f32(p + 4, v.b);
  }
  static F add(F x, F y) { return {vaddq_f32(x.a, y.a), vaddq_f32(x.b, y.b)}; }
  static F mul(F x, F y) { return {vmulq_f32(x.a, y.a), vmulq_f32(x.b, y.b)}; }
  static F fma(F x, F y, F c) { return {vfmaq_f32(c.a, x.a, y.a), vfmaq_f32(c.b, x.b, y.b)}; }
  static float reduce(F v) { return vaddvq_f32(vaddq_f32(v.a, v.b)); }
  // Lane i = the sum of v[i]: the halves of each vector added, then pairwise
  // sums twice.
  static F hsums(const F* v) {
    float32x4_t f[8];
    for (int i = 0; i < 8; ++i) f[i] = vaddq_f32(v[i].a, v[i].b);
    return {vpaddq_f32(vpaddq_f32(f[0], f[1]), vpaddq_f32(f[2], f[3])),
            vpaddq_f32(vpaddq_f32(f[4], f[5]), vpaddq_f32(f[6], f[7]))};
  }
  static F sub(F x, F y) { return {vsubq_f32(x.a, y.a), vsubq_f32(x.b, y.b)}; }
  static F div(F x, F y) { return {vdivq_f32(x.a, y.a), vdivq_f32(x.b, y.b)}; }
  static F min(F x, F y) { return {vminq_f32(x.a, y.a), vminq_f32(x.b, y.b)}; }
  static F max(F x, F y) { return {vmaxq_f32(x.a, y.a), vmaxq_f32(x.b, y.b)}; }
  static float reduce_max(F v) { return vmaxvq_f32(vmaxq_f32(v.a, v.b)); }
  static F round(F x) { return {vrndnq_f32(x.a), vrndnq_f32(x.b)}; }
  static void store_s8(int8_t* p, F v) {
    const int16x8_t w = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(v.a)), vqmovn_s32(vcvtnq_s32_f32(v.b)));
    vst1_s8(p, vqmovn_s16(w));
  }
  static F exp2i(F n) {
    const int32x4_t bias = vdupq_n_s32(127);
    return {vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n.a), bias), 23)),
            vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n.b), bias), 23))};
  }
  static F load_f16(const uint16_t* p) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    return {vcvt_f32_f16(vget_low_f16(h)), vcvt_f32_f16(vget_high_f16(h))};
  }
  static void store_f16(uint16_t* p, F v) {
    vst1q_u16(p, vreinterpretq_u16_f16(vcombine_f16(vcvt_f16_f32(v.a), vcvt_f16_f32(v.b))));
  }
  static F load_bf16(const uint16_t* p) {
    const uint16x8_t h = vld1q_u16(p);
    return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)),
            vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16))};
  }
  static float f16(uint16_t h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
  }

  static F block_scales(const float* s) { return set1(s[0]); }
  static B load_s8(const int8_t* p) { return {vld1q_s8(p), vld1q_s8(p + 16)}; }
  static B q4_0_nibbles(const BlockQ4_0* b) {
    const uint8x16_t q = vld1q_u8(b->qs);
    return {vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15))), vreinterpretq_s8_u8(vshrq_n_u8(q, 4))};
  }
  static B q8_0_values(const BlockQ8_0* b) { return load_s8(b->qs); }
  // Nibbles are 0..15, so unsigned x signed equals signed x signed here; the
  // callers only pass u <= 127.
  static I dot_u8s8(B u, B s) { return dot_s8s8(u, s); }
  static I dot_s8s8(B x, B y) {
#if defined(LOOM_NEON_DOTPROD)
    return {vdotq_s32(vdupq_n_s32(0), x.a, y.a), vdotq_s32(vdupq_n_s32(0), x.b, y.b)};
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(x.a), vget_low_s8(y.a));
    const int16x8_t p1 = vmull_s8(vget_high_s8(x.a), vget_high_s8(y.a));
    const int16x8_t p2 = vmull_s8(vget_low_s8(x.b), vget_low_s8(y.b));
    const int16x8_t p3 = vmull_s8(vget_high_s8(x.b), vget_high_s8(y.b));
    return {vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)), vpaddq_s32(vpaddlq_s16(p2), vpaddlq_s16(p3))};
#endif
  }
  static I add_i(I x, I y) { return {vaddq_s32(x.a, y.a), vaddq_s32(x.b, y.b)}; }
  static F to_f32(I v) { return {vcvtq_f32_s32(v.a), vcvtq_f32_s32(v.b)}; }
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
    const I off = dot_s8s8(B{vdupq_n_s8(8), vdupq_n_s8(8)}, x);
    return {x, I{vnegq_s32(off.a), vnegq_s32(off.b)}};
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
  // K-quant helpers (see vec_avx2.h for what each returns).
  // The two sub-blocks of 32 bytes of Q4_K nibbles, as 2 / kGroup groups.
  struct Nibbles {
    B part[2 / kGroup];
  };
  static Nibbles q4k_nibbles(const uint8_t* q) {
    const uint8x16_t a = vld1q_u8(q), b = vld1q_u8(q + 16), m = vdupq_n_u8(15);
    return {B{vreinterpretq_s8_u8(vandq_u8(a, m)), vreinterpretq_s8_u8(vandq_u8(b, m))},
            B{vreinterpretq_s8_u8(vshrq_n_u8(a, 4)), vreinterpretq_s8_u8(vshrq_n_u8(b, 4))}};
  }
  static B q6k_values(const uint8_t* ql, const uint8_t* qh, int k) {
    const uint8_t* lo = ql + 32 * (k & 1);
    uint8x16_t l0 = vld1q_u8(lo), l1 = vld1q_u8(lo + 16);
    if (k < 2) {
      l0 = vandq_u8(l0, vdupq_n_u8(15));
      l1 = vandq_u8(l1, vdupq_n_u8(15));
    } else {
      l0 = vshrq_n_u8(l0, 4);
      l1 = vshrq_n_u8(l1, 4);
    }
    const int8x16_t shift = vdupq_n_s8(int8_t(-2 * k));  // vshlq with a negative count shifts right
    const uint8x16_t h0 = vandq_u8(vshlq_u8(vld1q_u8(qh), shift), vdupq_n_u8(3));
    const uint8x16_t h1 = vandq_u8(vshlq_u8(vld1q_u8(qh + 16), shift), vdupq_n_u8(3));
    return {vreinterpretq_s8_u8(vorrq_u8(l0, vshlq_n_u8(h0, 4))), vreinterpretq_s8_u8(vorrq_u8(l1, vshlq_n_u8(h1, 4)))};
  }
  static F half_block_scales(const float* s) { return {vdupq_n_f32(s[0]), vdupq_n_f32(s[1])}; }
  static I lane_sums(B x, int mult) {
    const int8x16_t m = vdupq_n_s8(int8_t(mult));
    return dot_s8s8(B{m, m}, x);
  }
  static I sub_i(I x, I y) { return {vsubq_s32(x.a, y.a), vsubq_s32(x.b, y.b)}; }
  // Decode-path helpers (see vec_avx2.h).
  static I load_i(const int32_t* p) { return {vld1q_s32(p), vld1q_s32(p + 4)}; }
  static void store_i(int32_t* p, I v) {
    vst1q_s32(p, v.a);
    vst1q_s32(p + 4, v.b);
  }
  static I dot_u8s8_acc(I acc, B u, B s) { return add_i(acc, dot_u8s8(u, s)); }
  template <typename Block>
  static F scales_q(const Block* w, const float* dx) { return set1(f16(w->d) * dx[0]); }
  // Interleaved Q4_0 helpers (contract in vec_scalar.h).
  static B nib_lo(B w) {
    const uint8x16_t m = vdupq_n_u8(15);
    return {vreinterpretq_s8_u8(vandq_u8(vreinterpretq_u8_s8(w.a), m)),
            vreinterpretq_s8_u8(vandq_u8(vreinterpretq_u8_s8(w.b), m))};
  }
  static B nib_hi(B w) {
    return {vreinterpretq_s8_u8(vshrq_n_u8(vreinterpretq_u8_s8(w.a), 4)),
            vreinterpretq_s8_u8(vshrq_n_u8(vreinterpretq_u8_s8(w.b), 4))};
  }
  static B bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    const int8x16_t r = vreinterpretq_s8_s32(vdupq_n_s32(v));
    return {r, r};
  }
  static I set1_i(int32_t x) { return {vdupq_n_s32(x), vdupq_n_s32(x)}; }
};

}  // namespace neon or neon_dotprod
}  // namespace loom::backend::cpu::simd
