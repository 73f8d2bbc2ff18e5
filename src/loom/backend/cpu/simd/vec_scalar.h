// The vector layer contract, written out in plain C++ (the fallback on CPUs
// without a SIMD path, and the documentation of what every layer provides):
//   F      kLanes floats;  zero/set1/load/store/add/mul/fma/reduce,
//          load_f16/store_f16/load_bf16 (kLanes elements), f16 (one scalar)
//   B      kGroup quantization blocks of 32 bytes;  load_s8, q4_0_nibbles
//          (u8 0..15 in element order), q8_0_values
//   I      8 * kGroup int32 lanes, each a sum of 4 byte products of one block:
//          dot_u8s8 (unsigned x signed), dot_s8s8, add_i, to_f32 (-> F)
//   block_scales(s)  F whose lanes of block g all hold s[g]
//   sub/min/max, reduce_max, hsums (kLanes sums at once), round (to the
//   nearest integer, ties to even), exp2i (2^n for integral n in [-126, 127])
//   store_s8 (kLanes integral values in [-128, 127] stored as int8)
// kLanes == 8 * kGroup, so the I of a group converts to one F.
#pragma once

#include <cstdint>
#include <cstring>

#include "loom/core/dtype.h"
#include "loom/core/half.h"

namespace loom::backend::cpu::simd {

struct VecScalar {
  static constexpr const char* kName = "scalar";
  static constexpr int kLanes = 8;
  static constexpr int kGroup = 1;

  struct F {
    float v[8];
  };
  struct I {
    int32_t v[8];
  };
  struct B {
    int8_t v[32];
  };

  static F zero() { return F{}; }
  static F set1(float x) {
    F r;
    for (float& e : r.v) e = x;
    return r;
  }
  static F load(const float* p) {
    F r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store(float* p, F v) { std::memcpy(p, v.v, sizeof v.v); }
  static F add(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] += b.v[i];
    return a;
  }
  static F mul(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] *= b.v[i];
    return a;
  }
  static F fma(F a, F b, F c) {
    for (int i = 0; i < 8; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static float reduce(F v) {
    return ((v.v[0] + v.v[1]) + (v.v[2] + v.v[3])) + ((v.v[4] + v.v[5]) + (v.v[6] + v.v[7]));
  }
  // kLanes sums at once: lane i of the result = reduce(v[i]).
  static F hsums(const F* v) {
    F r;
    for (int i = 0; i < 8; ++i) r.v[i] = reduce(v[i]);
    return r;
  }
  static F sub(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] -= b.v[i];
    return a;
  }
  static F div(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] /= b.v[i];
    return a;
  }
  static F min(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] = b.v[i] < a.v[i] ? b.v[i] : a.v[i];
    return a;
  }
  static F max(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] = b.v[i] > a.v[i] ? b.v[i] : a.v[i];
    return a;
  }
  static float reduce_max(F v) {
    float m = v.v[0];
    for (int i = 1; i < 8; ++i) m = v.v[i] > m ? v.v[i] : m;
    return m;
  }
  // Adding 1.5 * 2^23 drops the fraction bits, rounded in the current mode
  // (to nearest even); subtracting it again leaves the integer. |x| < 2^22.
  static F round(F x) {
    for (float& e : x.v) e = (e + 12582912.0f) - 12582912.0f;
    return x;
  }
  static void store_s8(int8_t* p, F v) {
    for (int i = 0; i < 8; ++i) p[i] = int8_t(v.v[i]);
  }
  static F exp2i(F n) {
    F r;
    for (int i = 0; i < 8; ++i) {
      const uint32_t bits = uint32_t(int32_t(n.v[i]) + 127) << 23;
      std::memcpy(&r.v[i], &bits, 4);
    }
    return r;
  }
  static F load_f16(const uint16_t* p) {
    F r;
    for (int i = 0; i < 8; ++i) r.v[i] = f16_to_f32(p[i]);
    return r;
  }
  static void store_f16(uint16_t* p, F v) {
    for (int i = 0; i < 8; ++i) p[i] = f32_to_f16(v.v[i]);
  }
  static F load_bf16(const uint16_t* p) {
    F r;
    for (int i = 0; i < 8; ++i) r.v[i] = bf16_to_f32(p[i]);
    return r;
  }
  static float f16(uint16_t h) { return f16_to_f32(h); }

  static F block_scales(const float* s) { return set1(s[0]); }
  static B load_s8(const int8_t* p) {
    B r;
    std::memcpy(r.v, p, 32);
    return r;
  }
  static B q4_0_nibbles(const BlockQ4_0* b) {
    B r;
    for (int j = 0; j < 16; ++j) {
      r.v[j] = int8_t(b->qs[j] & 15);
      r.v[j + 16] = int8_t(b->qs[j] >> 4);
    }
    return r;
  }
  static B q8_0_values(const BlockQ8_0* b) { return load_s8(b->qs); }
  static I dot_u8s8(B u, B s) {
    I r;
    for (int l = 0; l < 8; ++l) {
      int32_t acc = 0;
      for (int k = 0; k < 4; ++k) acc += int32_t(uint8_t(u.v[4 * l + k])) * s.v[4 * l + k];
      r.v[l] = acc;
    }
    return r;
  }
  static I dot_s8s8(B a, B b) {
    I r;
    for (int l = 0; l < 8; ++l) {
      int32_t acc = 0;
      for (int k = 0; k < 4; ++k) acc += int32_t(a.v[4 * l + k]) * b.v[4 * l + k];
      r.v[l] = acc;
    }
    return r;
  }
  static I add_i(I a, I b) {
    for (int i = 0; i < 8; ++i) a.v[i] += b.v[i];
    return a;
  }
  static F to_f32(I v) {
    F r;
    for (int i = 0; i < 8; ++i) r.v[i] = float(v.v[i]);
    return r;
  }
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
    B eights;
    for (auto& e : eights.v) e = 8;
    I off = dot_u8s8(eights, x);
    for (auto& v : off.v) v = -v;
    return {x, off};
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
    Nibbles r;
    for (int l = 0; l < 32; ++l) {
      r.part[0].v[l] = int8_t(q[l] & 15);
      r.part[1].v[l] = int8_t(q[l] >> 4);
    }
    return r;
  }
  static B q6k_values(const uint8_t* ql, const uint8_t* qh, int k) {
    B r;
    for (int l = 0; l < 32; ++l) {
      const uint8_t low = ql[l + 32 * (k & 1)];
      r.v[l] = int8_t((k < 2 ? low & 15 : low >> 4) | (((qh[l] >> (2 * k)) & 3) << 4));
    }
    return r;
  }
  static F half_block_scales(const float* s) {
    F r;
    for (int i = 0; i < 8; ++i) r.v[i] = s[i / 4];
    return r;
  }
  static I lane_sums(B x, int mult) {
    I r;
    for (int l = 0; l < 8; ++l) r.v[l] = mult * (x.v[4 * l] + x.v[4 * l + 1] + x.v[4 * l + 2] + x.v[4 * l + 3]);
    return r;
  }
  static I sub_i(I a, I b) {
    for (int i = 0; i < 8; ++i) a.v[i] -= b.v[i];
    return a;
  }
  // Decode-path helpers (see vec_avx2.h).
  static I load_i(const int32_t* p) {
    I r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store_i(int32_t* p, I v) { std::memcpy(p, v.v, sizeof v.v); }
  static I dot_u8s8_acc(I acc, B u, B s) { return add_i(acc, dot_u8s8(u, s)); }
  template <typename Block>
  static F scales_q(const Block* w, const float* dx) { return set1(f16_to_f32(w->d) * dx[0]); }
  // Interleaved Q4_0 (16 weight rows per group, 4 bytes of each row side by
  // side; see pack_q4_0x16): split a load of packed bytes into low and high
  // nibbles, broadcast 4 activation bytes to every int32 lane, set an int32.
  static B nib_lo(B w) {
    for (auto& e : w.v) e = int8_t(uint8_t(e) & 15);
    return w;
  }
  static B nib_hi(B w) {
    for (auto& e : w.v) e = int8_t(uint8_t(e) >> 4);
    return w;
  }
  static B bcast4(const int8_t* p) {
    B r;
    for (int l = 0; l < 8; ++l) std::memcpy(r.v + 4 * l, p, 4);
    return r;
  }
  static I set1_i(int32_t x) {
    I r;
    for (auto& e : r.v) e = x;
    return r;
  }
};

}  // namespace loom::backend::cpu::simd
