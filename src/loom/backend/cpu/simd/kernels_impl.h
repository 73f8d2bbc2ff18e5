// The one source of every SIMD kernel. Each kernels_<isa>.cpp includes its
// vector layer (vec_<isa>.h, contract in vec_scalar.h), defines LOOM_VEC as
// that layer's type and includes this file, which defines the kernel table
// for that instruction set. Compiled with that ISA's flags only. The softmax
// family (exp, SwiGLU, attention) lives in kernels_softmax_impl.h, included below.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "loom/backend/cpu/simd/kernels.h"
#include "loom/core/half.h"

namespace loom::backend::cpu::simd {
namespace LOOM_ISA_NS {

using V = LOOM_VEC;

// Two passes: scales, int8 values and block sums (exact in float: integers
// below 2^24), then o8 from the stored bytes kGroup blocks at a time (summing
// bytes right after storing them would wait on store forwarding).
void quantize_row(const float* x, int64_t n, int8_t* q, float* d, float* s, int32_t* o8) {
  constexpr int L = V::kLanes, P = 32 / L, G = V::kGroup;
  static_assert(32 % L == 0, "a block is a whole number of vectors");
  const int64_t nb = n / 32;
  for (int64_t b = 0; b < nb; ++b) {
    typename V::F v[P], m = V::zero();
    for (int j = 0; j < P; ++j) {
      v[j] = V::load(x + b * 32 + j * L);
      m = V::max(m, V::max(v[j], V::sub(V::zero(), v[j])));
    }
    const float scale = V::reduce_max(m) / 127.0f;
    const auto inv = V::set1(scale != 0 ? 1.0f / scale : 0.0f);
    auto sum = V::zero();
    for (int j = 0; j < P; ++j) {
      const auto r = V::round(V::mul(v[j], inv));
      V::store_s8(q + b * 32 + j * L, r);
      sum = V::add(sum, r);
    }
    d[b] = scale;
    s[b] = scale * V::reduce(sum);
  }
  int64_t b = 0;
  for (; b + G <= nb; b += G) V::store_i(o8 + b * 8, V::sub_i(V::set1_i(0), V::lane_sums(V::load_s8(q + b * 32), 8)));
  for (; b < nb; ++b)
    for (int l = 0; l < 8; ++l) {
      const int8_t* q4 = q + b * 32 + 4 * l;
      o8[b * 8 + l] = -8 * (q4[0] + q4[1] + q4[2] + q4[3]);
    }
}

// Q4_0 stores (nibble - 8): sum((u - 8) * q) = sum(u * q) - 8 * sum(q); the
// second term is x.o8, the start value of the integer dot. Two accumulators
// (two groups per step) keep the FMA latency off the critical path; decoding
// is memory-bound only if the per-block work is short.
float dot_q4_0(const BlockQ4_0* w, QRow x, int64_t nb) {
  constexpr int G = V::kGroup;
  typename V::F acc0 = V::zero(), acc1 = V::zero();
  int64_t b = 0;
  for (; b + 2 * G <= nb; b += 2 * G) {
    const auto i0 = V::dot_u8s8_acc(V::load_i(x.o8 + b * 8), V::q4_0_nibbles(w + b), V::load_s8(x.q + b * 32));
    const auto i1 = V::dot_u8s8_acc(V::load_i(x.o8 + (b + G) * 8), V::q4_0_nibbles(w + b + G),
                                    V::load_s8(x.q + (b + G) * 32));
    acc0 = V::fma(V::to_f32(i0), V::scales_q(w + b, x.d + b), acc0);
    acc1 = V::fma(V::to_f32(i1), V::scales_q(w + b + G, x.d + b + G), acc1);
  }
  for (; b + G <= nb; b += G) {
    const auto i0 = V::dot_u8s8_acc(V::load_i(x.o8 + b * 8), V::q4_0_nibbles(w + b), V::load_s8(x.q + b * 32));
    acc0 = V::fma(V::to_f32(i0), V::scales_q(w + b, x.d + b), acc0);
  }
  float sum = V::reduce(V::add(acc0, acc1));
  for (; b < nb; ++b) {  // blocks left over from the last group
    int32_t dot = 0;
    for (int j = 0; j < 16; ++j)
      dot += (int32_t(w[b].qs[j] & 15) - 8) * x.q[b * 32 + j] + (int32_t(w[b].qs[j] >> 4) - 8) * x.q[b * 32 + j + 16];
    sum += V::f16(w[b].d) * x.d[b] * float(dot);
  }
  return sum;
}

float dot_q8_0(const BlockQ8_0* w, QRow x, int64_t nb) {
  constexpr int G = V::kGroup;
  typename V::F acc0 = V::zero(), acc1 = V::zero();
  int64_t b = 0;
  for (; b + 2 * G <= nb; b += 2 * G) {
    const auto i0 = V::dot_s8s8(V::q8_0_values(w + b), V::load_s8(x.q + b * 32));
    const auto i1 = V::dot_s8s8(V::q8_0_values(w + b + G), V::load_s8(x.q + (b + G) * 32));
    acc0 = V::fma(V::to_f32(i0), V::scales_q(w + b, x.d + b), acc0);
    acc1 = V::fma(V::to_f32(i1), V::scales_q(w + b + G, x.d + b + G), acc1);
  }
  for (; b + G <= nb; b += G) {
    const auto i0 = V::dot_s8s8(V::q8_0_values(w + b), V::load_s8(x.q + b * 32));
    acc0 = V::fma(V::to_f32(i0), V::scales_q(w + b, x.d + b), acc0);
  }
  float sum = V::reduce(V::add(acc0, acc1));
  for (; b < nb; ++b) {
    int32_t dot = 0;
    for (int j = 0; j < 32; ++j) dot += int32_t(w[b].qs[j]) * x.q[b * 32 + j];
    sum += V::f16(w[b].d) * x.d[b] * float(dot);
  }
  return sum;
}

// Q4_K: sub-block j of super-block i meets activation block 8i + j (both 32
// long): sum(d sc_j q x) - dmin m_j sum(x), with sum(x) precomputed in x.s.
float dot_q4_k(const BlockQ4_K* w, QRow x, int64_t nsb) {
  constexpr int G = V::kGroup;
  typename V::F acc = V::zero();
  float offset = 0;
  for (int64_t i = 0; i < nsb; ++i) {
    const float d = V::f16(w[i].d), dmin = V::f16(w[i].dmin);
    float sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      uint8_t a, m;
      q4_k_scale_min(w[i].scales, j, &a, &m);
      sc[j] = d * float(a);
      mn[j] = dmin * float(m);
    }
    const int64_t b0 = i * 8;
    for (int c = 0; c < 4; ++c) {
      const auto parts = V::q4k_nibbles(w[i].qs + 32 * c);
      for (int h = 0; h < 2 / G; ++h) {
        const int j = 2 * c + h * G;  // first sub-block of this group
        const auto dot = V::dot_u8s8(parts.part[h], V::load_s8(x.q + (b0 + j) * 32));
        float scale[G];
        for (int g = 0; g < G; ++g) scale[g] = sc[j + g] * x.d[b0 + j + g];
        acc = V::fma(V::to_f32(dot), V::block_scales(scale), acc);
      }
    }
    for (int j = 0; j < 8; ++j) offset += mn[j] * x.s[b0 + j];
  }
  return V::reduce(acc) - offset;
}

// Q6_K: quarter k of half h of super-block i is activation block 8i + 4h + k;
// its two 16-element sub-blocks have their own scales (lanes 0-3 and 4-7 of
// the block's int sums). q - 32 is folded in as 32 * sum(x) per lane.
float dot_q6_k(const BlockQ6_K* w, QRow x, int64_t nsb) {
  constexpr int G = V::kGroup;
  typename V::F acc = V::zero();
  for (int64_t i = 0; i < nsb; ++i) {
    const float d = V::f16(w[i].d);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; k += G) {
        const int64_t blk = i * 8 + 4 * h + k;
        const auto xv = V::load_s8(x.q + blk * 32);
        const auto q = V::q6k_values(w[i].ql + 64 * h, w[i].qh + 32 * h, k);
        const auto dot = V::sub_i(V::dot_u8s8(q, xv), V::lane_sums(xv, 32));
        float scale[2 * G];
        for (int g = 0; g < G; ++g) {
          const int sub = 2 * (4 * h + k + g);  // 16-element sub-block of the super-block
          scale[2 * g] = d * float(w[i].scales[sub]) * x.d[blk + g];
          scale[2 * g + 1] = d * float(w[i].scales[sub + 1]) * x.d[blk + g];
        }
        acc = V::fma(V::to_f32(dot), V::half_block_scales(scale), acc);
      }
    }
  }
  return V::reduce(acc);
}

// Plain float dots over n elements (a multiple of kLanes; callers do the
// tail): four independent accumulators hide the FMA latency.
template <typename Load>
float dot_float(const float* x, int64_t n, Load load) {
  constexpr int L = V::kLanes;
  typename V::F a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 = V::fma(load(i), V::load(x + i), a0);
    a1 = V::fma(load(i + L), V::load(x + i + L), a1);
    a2 = V::fma(load(i + 2 * L), V::load(x + i + 2 * L), a2);
    a3 = V::fma(load(i + 3 * L), V::load(x + i + 3 * L), a3);
  }
  for (; i + L <= n; i += L) a0 = V::fma(load(i), V::load(x + i), a0);
  return V::reduce(V::add(V::add(a0, a1), V::add(a2, a3)));
}

float dot_f32(const float* w, const float* x, int64_t n) {
  const int64_t main = n / V::kLanes * V::kLanes;
  float s = dot_float(x, main, [&](int64_t i) { return V::load(w + i); });
  for (int64_t i = main; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16(const uint16_t* w, const float* x, int64_t n) {
  const int64_t main = n / V::kLanes * V::kLanes;
  float s = dot_float(x, main, [&](int64_t i) { return V::load_f16(w + i); });
  for (int64_t i = main; i < n; ++i) s += V::f16(w[i]) * x[i];
  return s;
}

float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  const int64_t main = n / V::kLanes * V::kLanes;
  float s = dot_float(x, main, [&](int64_t i) { return V::load_bf16(w + i); });
  for (int64_t i = main; i < n; ++i) s += bf16_to_f32(w[i]) * x[i];
  return s;
}

void axpy_f32(float a, const float* v, float* y, int64_t n) {
  const auto av = V::set1(a);
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::store(y + i, V::fma(av, V::load(v + i), V::load(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}

// --- interleaved Q4_0 (16 weight rows per group, see pack_q4_0x16) --------
// A vector lane is a weight row; 4 activation bytes are broadcast to every
// lane, so a block costs 4 loads, 12 bit operations and 8 byte dots for 16
// rows, and the Q4_0 offset -8 * sum(x) starts the integer sums (x.ob).
constexpr int kSub = kPackRows / V::kLanes;  // vectors per group of 16 rows
constexpr int kSubBytes = V::kLanes * 4;     // bytes of one vector in a 64-byte chunk

// The kernel prefetches its own stream kPrefetchAhead bytes ahead (kernels.h),
// never past `end`: the end of its caller's run (what follows belongs to
// another thread or to nothing).
inline void prefetch_l2(const std::byte* p) { __builtin_prefetch(p, 0, 2); }

// Block b of a packed group (see kernels.h).
inline const int8_t* packed_nibbles(const std::byte* group, int64_t b) {
  return reinterpret_cast<const int8_t*>(group + packed_q4_0x16_nibbles_offset(b));
}
inline const uint16_t* packed_scales(const std::byte* group, int64_t b) {
  return reinterpret_cast<const uint16_t*>(group + packed_q4_0x16_scales_offset(b));
}

void gemv_q4_0x16(const std::byte* w, int64_t groups, int64_t nb, QRow x, float* y, const std::byte* end) {
  for (int64_t g = 0; g < groups; ++g, y += kPackRows) {
    typename V::F acc[kSub];
    for (auto& a : acc) a = V::zero();
    for (int64_t b = 0; b < nb; b += 2, w += kPackPairBytes) {
      if (end - w >= kPrefetchAhead + kPackPairBytes)
        for (int64_t l = 0; l < kPackPairBytes; l += 64) prefetch_l2(w + kPrefetchAhead + l);
      for (int64_t u = 0; u < 2 && b + u < nb; ++u) {
        const int8_t* qs = packed_nibbles(w, u);  // w is at block b, a pair boundary
        const uint16_t* d = packed_scales(w, u);
        const int8_t* xq = x.q + (b + u) * 32;
        const auto dx = V::set1(x.d[b + u]);
        const auto off = V::set1_i(x.ob[b + u]);
        for (int s = 0; s < kSub; ++s) {
          auto lo = off, hi = V::set1_i(0);
          for (int c = 0; c < 4; ++c) {
            const auto wb = V::load_s8(qs + c * 64 + s * kSubBytes);
            lo = V::dot_u8s8_acc(lo, V::nib_lo(wb), V::bcast4(xq + 4 * c));
            hi = V::dot_u8s8_acc(hi, V::nib_hi(wb), V::bcast4(xq + 16 + 4 * c));
          }
          acc[s] = V::fma(V::to_f32(V::add_i(lo, hi)), V::mul(V::load_f16(d + s * V::kLanes), dx), acc[s]);
        }
      }
    }
    for (int s = 0; s < kSub; ++s) V::store(y + s * V::kLanes, acc[s]);
  }
}

// 16 weight rows x NR activation rows; the unpacked nibbles of a block meet
// every activation row of the tile.
template <int NR>
void tile_q4_0x16(const std::byte* w, int64_t nb, const QRow* x, float* y, int64_t ldy) {
  for (int s = 0; s < kSub; ++s) {
    typename V::F acc[NR];
    for (auto& a : acc) a = V::zero();
    for (int64_t b = 0; b < nb; ++b) {
      const int8_t* qs = packed_nibbles(w, b) + s * kSubBytes;
      typename V::B lo[4], hi[4];
      for (int c = 0; c < 4; ++c) {
        const auto wb = V::load_s8(qs + c * 64);
        lo[c] = V::nib_lo(wb);
        hi[c] = V::nib_hi(wb);
      }
      const auto dw = V::load_f16(packed_scales(w, b) + s * V::kLanes);
      for (int j = 0; j < NR; ++j) {
        const int8_t* xq = x[j].q + b * 32;
        auto a0 = V::set1_i(x[j].ob[b]), a1 = V::set1_i(0);
        for (int c = 0; c < 4; ++c) {
          a0 = V::dot_u8s8_acc(a0, lo[c], V::bcast4(xq + 4 * c));
          a1 = V::dot_u8s8_acc(a1, hi[c], V::bcast4(xq + 16 + 4 * c));
        }
        acc[j] = V::fma(V::to_f32(V::add_i(a0, a1)), V::mul(dw, V::set1(x[j].d[b])), acc[j]);
      }
    }
    for (int j = 0; j < NR; ++j) V::store(y + j * ldy + s * V::kLanes, acc[j]);
  }
}

template <int NR>
void tiles_q4_0x16(const std::byte* w, const QRow* x, int64_t n, int64_t nb, float* y, int64_t ldy) {
  if constexpr (NR > 0) {
    if (n >= NR) {
      tile_q4_0x16<NR>(w, nb, x, y, ldy);
      return;
    }
    tiles_q4_0x16<NR - 1>(w, x, n, nb, y, ldy);
  }
}

void gemm_q4_0x16(const std::byte* w, int64_t groups, const QRow* x, int64_t n, int64_t nb, float* y, int64_t ldy) {
  constexpr int NR = V::kLanes >= 16 ? 8 : 4;  // registers: 8 unpacked operands + NR sums + temporaries
  const int64_t gbytes = packed_q4_0x16_group_bytes(nb);
  for (int64_t g = 0; g < groups; ++g, w += gbytes, y += kPackRows)
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
      const int64_t nr = std::min<int64_t>(NR, n - j0);
      tiles_q4_0x16<NR>(w, x + j0, nr, nb, y + j0 * ldy, ldy);
    }
}

// --- tiled products for several rows of x (prompt processing) ------------
// A tile is MR weight rows x NR activation rows: every weight block group is
// prepared once for NR rows of x and every activation group once for MR
// weights, and the MR * NR sums stay in registers for the whole row.
// y[j * ldy + i] = dot(weight row i, activation row j).
constexpr int kMR = 4, kNR = 4;

template <int MR, int NR>
void tile_q4_0(const std::byte* w, int64_t wstride, const QRow* x, int64_t nb, float* y, int64_t ldy) {
  constexpr int G = V::kGroup;
  typename V::F acc[MR][NR];
  for (auto& row : acc)
    for (auto& a : row) a = V::zero();
  int64_t b = 0;
  for (; b + G <= nb; b += G) {
    typename V::Q4W pw[MR];
    typename V::F dw[MR];
    for (int i = 0; i < MR; ++i) {
      const auto* blk = reinterpret_cast<const BlockQ4_0*>(w + i * wstride) + b;
      pw[i] = V::prep_q4_w(blk);
      float d[G];
      for (int g = 0; g < G; ++g) d[g] = V::f16(blk[g].d);
      dw[i] = V::block_scales(d);
    }
    for (int j = 0; j < NR; ++j) {
      const auto px = V::prep_q4_x(V::load_s8(x[j].q + b * 32));
      const auto dx = V::block_scales(x[j].d + b);
      for (int i = 0; i < MR; ++i) acc[i][j] = V::fma(V::to_f32(V::dot_q4(pw[i], px)), V::mul(dw[i], dx), acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    const auto* row = reinterpret_cast<const BlockQ4_0*>(w + i * wstride);
    for (int j = 0; j < NR; ++j) {
      float sum = V::reduce(acc[i][j]);
      for (int64_t r = b; r < nb; ++r) {  // blocks left over from the last group
        int32_t dot = 0;
        for (int k = 0; k < 16; ++k)
          dot += (int32_t(row[r].qs[k] & 15) - 8) * x[j].q[r * 32 + k] + (int32_t(row[r].qs[k] >> 4) - 8) * x[j].q[r * 32 + k + 16];
        sum += V::f16(row[r].d) * x[j].d[r] * float(dot);
      }
      y[j * ldy + i] = sum;
    }
  }
}

template <int MR, int NR>
void tile_q8_0(const std::byte* w, int64_t wstride, const QRow* x, int64_t nb, float* y, int64_t ldy) {
  constexpr int G = V::kGroup;
  typename V::F acc[MR][NR];
  for (auto& row : acc)
    for (auto& a : row) a = V::zero();
  int64_t b = 0;
  for (; b + G <= nb; b += G) {
    typename V::Q8W pw[MR];
    typename V::F dw[MR];
    for (int i = 0; i < MR; ++i) {
      const auto* blk = reinterpret_cast<const BlockQ8_0*>(w + i * wstride) + b;
      pw[i] = V::prep_q8_w(blk);
      float d[G];
      for (int g = 0; g < G; ++g) d[g] = V::f16(blk[g].d);
      dw[i] = V::block_scales(d);
    }
    for (int j = 0; j < NR; ++j) {
      const auto px = V::prep_q8_x(V::load_s8(x[j].q + b * 32));
      const auto dx = V::block_scales(x[j].d + b);
      for (int i = 0; i < MR; ++i) acc[i][j] = V::fma(V::to_f32(V::dot_q8(pw[i], px)), V::mul(dw[i], dx), acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    const auto* row = reinterpret_cast<const BlockQ8_0*>(w + i * wstride);
    for (int j = 0; j < NR; ++j) {
      float sum = V::reduce(acc[i][j]);
      for (int64_t r = b; r < nb; ++r) {
        int32_t dot = 0;
        for (int k = 0; k < 32; ++k) dot += int32_t(row[r].qs[k]) * x[j].q[r * 32 + k];
        sum += V::f16(row[r].d) * x[j].d[r] * float(dot);
      }
      y[j * ldy + i] = sum;
    }
  }
}

// Float weights (F32, F16, BF16 converted in registers) against float rows of
// x. Load says how: vec(row, i) loads kLanes weights, one(row, i) a single one.
// (Types with static members rather than lambdas: a capture-less lambda's
// function-pointer thunk would be compiled outside the target region.)
struct LoadF32 {
  static constexpr int64_t kBytes = 4;  // per element
  static typename V::F vec(const std::byte* r, int64_t i) { return V::load(reinterpret_cast<const float*>(r) + i); }
  static float one(const std::byte* r, int64_t i) { return reinterpret_cast<const float*>(r)[i]; }
};
struct LoadF16 {
  static constexpr int64_t kBytes = 2;
  static typename V::F vec(const std::byte* r, int64_t i) {
    return V::load_f16(reinterpret_cast<const uint16_t*>(r) + i);
  }
  static float one(const std::byte* r, int64_t i) { return V::f16(reinterpret_cast<const uint16_t*>(r)[i]); }
};
struct LoadBF16 {
  static typename V::F vec(const std::byte* r, int64_t i) {
    return V::load_bf16(reinterpret_cast<const uint16_t*>(r) + i);
  }
  static float one(const std::byte* r, int64_t i) { return bf16_to_f32(reinterpret_cast<const uint16_t*>(r)[i]); }
};

template <int MR, int NR, typename Load>
void tile_float(const std::byte* w, int64_t wstride, const float* const* x, int64_t n, float* y, int64_t ldy) {
  constexpr int L = V::kLanes;
  typename V::F acc[MR][NR];
  for (auto& row : acc)
    for (auto& a : row) a = V::zero();
  int64_t k = 0;
  for (; k + L <= n; k += L) {
    typename V::F wv[MR];
    for (int i = 0; i < MR; ++i) wv[i] = Load::vec(w + i * wstride, k);
    for (int j = 0; j < NR; ++j) {
      const auto xv = V::load(x[j] + k);
      for (int i = 0; i < MR; ++i) acc[i][j] = V::fma(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float sum = V::reduce(acc[i][j]);
      for (int64_t r = k; r < n; ++r) sum += Load::one(w + i * wstride, r) * x[j][r];
      y[j * ldy + i] = sum;
    }
  }
}

// Calls f(std::integral_constant<int, n>) for a runtime n in 1..N.
template <int N, typename F>
void by_count(int n, F&& f) {
  if constexpr (N > 1) {
    if (n < N) {
      by_count<N - 1>(n, f);
      return;
    }
  }
  f(std::integral_constant<int, N>{});
}

// Maps a runtime (mr, nr) to the template instance; MR, NR are the maxima.
template <int MR = kMR, int NR = kNR, typename F>
void by_size(int mr, int nr, F&& f) {
  by_count<MR>(mr, [&](auto m) { by_count<NR>(nr, [&](auto n) { f(m, n); }); });
}

void gemm_q4_0(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
               int64_t ldy) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR)
    for (int64_t j0 = 0; j0 < n; j0 += kNR)
      by_size(int(std::min<int64_t>(kMR, m - i0)), int(std::min<int64_t>(kNR, n - j0)), [&](auto mr, auto nr) {
        tile_q4_0<decltype(mr)::value, decltype(nr)::value>(w + i0 * wstride, wstride, x + j0, nb, y + j0 * ldy + i0, ldy);
      });
}

void gemm_q8_0(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
               int64_t ldy) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR)
    for (int64_t j0 = 0; j0 < n; j0 += kNR)
      by_size(int(std::min<int64_t>(kMR, m - i0)), int(std::min<int64_t>(kNR, n - j0)), [&](auto mr, auto nr) {
        tile_q8_0<decltype(mr)::value, decltype(nr)::value>(w + i0 * wstride, wstride, x + j0, nb, y + j0 * ldy + i0, ldy);
      });
}

template <int MR, int NR>
void tile_q4_k(const std::byte* w, int64_t wstride, const QRow* x, int64_t nsb, float* y, int64_t ldy) {
  constexpr int G = V::kGroup;
  typename V::F acc[MR][NR];
  float offset[MR][NR] = {};
  for (auto& row : acc)
    for (auto& a : row) a = V::zero();
  for (int64_t i = 0; i < nsb; ++i) {
    float sc[MR][8], mn[MR][8];
    const BlockQ4_K* blk[MR];
    for (int r = 0; r < MR; ++r) {
      blk[r] = reinterpret_cast<const BlockQ4_K*>(w + r * wstride) + i;
      const float d = V::f16(blk[r]->d), dmin = V::f16(blk[r]->dmin);
      for (int j = 0; j < 8; ++j) {
        uint8_t a, m;
        q4_k_scale_min(blk[r]->scales, j, &a, &m);
        sc[r][j] = d * float(a);
        mn[r][j] = dmin * float(m);
      }
    }
    const int64_t b0 = i * 8;
    for (int c = 0; c < 4; ++c) {
      typename V::Nibbles parts[MR];
      for (int r = 0; r < MR; ++r) parts[r] = V::q4k_nibbles(blk[r]->qs + 32 * c);
      for (int h = 0; h < 2 / G; ++h) {
        const int sub = 2 * c + h * G;
        typename V::F ws[MR];
        for (int r = 0; r < MR; ++r) ws[r] = V::block_scales(&sc[r][sub]);
        for (int j = 0; j < NR; ++j) {
          const auto xv = V::load_s8(x[j].q + (b0 + sub) * 32);
          const auto dx = V::block_scales(x[j].d + b0 + sub);
          for (int r = 0; r < MR; ++r)
            acc[r][j] = V::fma(V::to_f32(V::dot_u8s8(parts[r].part[h], xv)), V::mul(ws[r], dx), acc[r][j]);
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j)
        for (int sub = 0; sub < 8; ++sub) offset[r][j] += mn[r][sub] * x[j].s[b0 + sub];
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) y[j * ldy + r] = V::reduce(acc[r][j]) - offset[r][j];
}

template <int MR, int NR>
void tile_q6_k(const std::byte* w, int64_t wstride, const QRow* x, int64_t nsb, float* y, int64_t ldy) {
  constexpr int G = V::kGroup;
  typename V::F acc[MR][NR];
  for (auto& row : acc)
    for (auto& a : row) a = V::zero();
  for (int64_t i = 0; i < nsb; ++i) {
    float sc[MR][16];
    const BlockQ6_K* blk[MR];
    for (int r = 0; r < MR; ++r) {
      blk[r] = reinterpret_cast<const BlockQ6_K*>(w + r * wstride) + i;
      const float d = V::f16(blk[r]->d);
      for (int j = 0; j < 16; ++j) sc[r][j] = d * float(blk[r]->scales[j]);
    }
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; k += G) {
        const int64_t b = i * 8 + 4 * h + k;
        typename V::B q[MR];
        typename V::F ws[MR];
        for (int r = 0; r < MR; ++r) {
          q[r] = V::q6k_values(blk[r]->ql + 64 * h, blk[r]->qh + 32 * h, k);
          ws[r] = V::half_block_scales(&sc[r][2 * (4 * h + k)]);
        }
        for (int j = 0; j < NR; ++j) {
          const auto xv = V::load_s8(x[j].q + b * 32);
          const auto off = V::lane_sums(xv, 32);
          const auto dx = V::block_scales(x[j].d + b);
          for (int r = 0; r < MR; ++r)
            acc[r][j] = V::fma(V::to_f32(V::sub_i(V::dot_u8s8(q[r], xv), off)), V::mul(ws[r], dx), acc[r][j]);
        }
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) y[j * ldy + r] = V::reduce(acc[r][j]);
}

void gemm_q4_k(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
               int64_t ldy) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR)
    for (int64_t j0 = 0; j0 < n; j0 += kNR)
      by_size(int(std::min<int64_t>(kMR, m - i0)), int(std::min<int64_t>(kNR, n - j0)), [&](auto mr, auto nr) {
        tile_q4_k<decltype(mr)::value, decltype(nr)::value>(w + i0 * wstride, wstride, x + j0, nb / 8,
                                                            y + j0 * ldy + i0, ldy);
      });
}

void gemm_q6_k(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
               int64_t ldy) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR)
    for (int64_t j0 = 0; j0 < n; j0 += kNR)
      by_size(int(std::min<int64_t>(kMR, m - i0)), int(std::min<int64_t>(kNR, n - j0)), [&](auto mr, auto nr) {
        tile_q6_k<decltype(mr)::value, decltype(nr)::value>(w + i0 * wstride, wstride, x + j0, nb / 8,
                                                            y + j0 * ldy + i0, ldy);
      });
}

// With 32 vector registers (AVX-512), 4 weight rows x 6 activation rows:
// 24 sums, 4 weights and an activation in registers, 24 FMAs per 10 loads.
constexpr int kFloatNR = V::kLanes == 16 ? 6 : kNR;

template <typename Load>
void gemm_float(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k, float* y,
                int64_t ldy) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR)
    for (int64_t j0 = 0; j0 < n; j0 += kFloatNR)
      by_size<kMR, kFloatNR>(int(std::min<int64_t>(kMR, m - i0)), int(std::min<int64_t>(kFloatNR, n - j0)),
                             [&](auto mr, auto nr) {
                               tile_float<decltype(mr)::value, decltype(nr)::value, Load>(
                                   w + i0 * wstride, wstride, x + j0, k, y + j0 * ldy + i0, ldy);
                             });
}

void gemm_f32(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k, float* y,
              int64_t ldy) {
  gemm_float<LoadF32>(w, wstride, m, x, n, k, y, ldy);
}

void gemm_f16(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k, float* y,
              int64_t ldy) {
  gemm_float<LoadF16>(w, wstride, m, x, n, k, y, ldy);
}

void gemm_bf16(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k, float* y,
               int64_t ldy) {
  gemm_float<LoadBF16>(w, wstride, m, x, n, k, y, ldy);
}

// Twelve independent chains cover the FMA latency (4 cycles) times the
// number of FMA pipes (2) on current cores, with room to spare.
double fma_peak(int64_t iterations) {
  constexpr int kChains = 12;
  typename V::F acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = V::set1(float(c));
  const auto m = V::set1(0.9999999f), a = V::set1(1e-7f);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = V::fma(acc[c], m, a);
  typename V::F sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = V::add(sum, acc[c]);
  volatile float sink = V::reduce(sum);  // keeps the loop from being optimised away
  (void)sink;
  return double(iterations) * kChains * V::kLanes * 2;
}

double dot8_peak(int64_t iterations) {
  constexpr int kChains = 12;
  typename V::I acc[kChains];
  for (auto& a : acc) a = V::set1_i(0);
  int8_t bytes[8] = {1, 2, 3, 4, -1, -2, -3, -4};
  volatile int8_t first = 1;  // operands the compiler cannot fold
  bytes[0] = first;
  const auto u = V::bcast4(bytes), s = V::bcast4(bytes + 4);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = V::dot_u8s8_acc(acc[c], u, s);
  typename V::I sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = V::add_i(sum, acc[c]);
  volatile float sink = V::reduce(V::to_f32(sum));  // keeps the loop from being optimised away
  (void)sink;
  return double(iterations) * kChains * double(sizeof(typename V::B)) * 2;
}

// exp, SwiGLU, attention.
#include "loom/backend/cpu/simd/kernels_softmax_impl.h"

}  // namespace LOOM_ISA_NS

extern const Kernels LOOM_TABLE = {
    LOOM_ISA_NS::V::kName,           LOOM_ISA_NS::quantize_row, LOOM_ISA_NS::dot_q4_0, LOOM_ISA_NS::dot_q8_0,
    LOOM_ISA_NS::dot_f16, LOOM_ISA_NS::dot_bf16,   LOOM_ISA_NS::dot_f32,
    LOOM_ISA_NS::axpy_f32, LOOM_ISA_NS::fma_peak, LOOM_ISA_NS::dot8_peak, LOOM_ISA_NS::gemm_q4_0, LOOM_ISA_NS::gemm_q8_0,
    LOOM_ISA_NS::gemm_f32, LOOM_ISA_NS::gemm_f16, LOOM_ISA_NS::gemm_bf16, LOOM_ISA_NS::dot_q4_k,
    LOOM_ISA_NS::dot_q6_k, LOOM_ISA_NS::gemm_q4_k, LOOM_ISA_NS::gemm_q6_k, LOOM_ISA_NS::gemv_q4_0x16,
    LOOM_ISA_NS::gemm_q4_0x16, LOOM_ISA_NS::exp_f32, LOOM_ISA_NS::attend_f32, LOOM_ISA_NS::attend_f16,
    LOOM_ISA_NS::swiglu_f32,
};

}  // namespace loom::backend::cpu::simd
