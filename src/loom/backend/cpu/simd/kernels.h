// CPU kernels compiled once per instruction set (AVX2, AVX-512, NEON,
// NEON+dotprod, scalar) from one source (kernels_impl.h), and picked at run
// time for the CPU at hand. LOOM_CPU_ISA=avx2|avx512|neon|neon-dotprod|scalar
// forces a path (tests use kernels_for to run every path this CPU supports).
//
//   const Kernels& k = kernels();
//   k.quantize_row(x, K, q, d, s);
//   float y = k.dot_q4_0(w_row, {q, d, s}, K / 32);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "loom/core/dtype.h"

namespace loom::backend::cpu::simd {

// A row of activations quantized to int8 in blocks of 32: values q[n],
// per-block scale d[n/32], d * (sum of the block's q) in s[n/32], and for
// every 4 consecutive values -8 * their sum in o8[n/4] (the Q4_0 offset
// in the int32 lanes of a block dot: lane l covers bytes 4l .. 4l+3 on every
// instruction set). Separate arrays, so consecutive blocks load as one vector.
struct QRow {
  const int8_t* q;
  const float* d;
  const float* s;
  const int32_t* o8;
  const int32_t* ob = nullptr;  // -8 * the sum of each block (the interleaved Q4_0 kernels need it)
};

// Q4_0 weights repacked 16 rows at a time, so that one vector lane holds one
// weight row and a decode step needs no shuffles. A group of 16 rows of nb
// blocks is one contiguous stream of pairs of blocks, 576 bytes (9 cache
// lines) each: the two blocks' nibbles (2 x 256 bytes), then their scales
// (2 x 16 f16), so a thread reading a run of groups walks memory strictly
// forward and can prefetch it by address. A block's nibbles are 4 chunks of
// 64 bytes; chunk c holds bytes 4c .. 4c+3 of the qs of rows 0..15 side by
// side (low nibbles: elements 4c..4c+3, high nibbles: elements 16+4c .. 16+4c+3).
// With nb odd the last pair holds one block (the second block's bytes are unused).
inline constexpr int kPackRows = 16;

// Decoding streams every weight once, and over 4 KiB pages the interleaved
// Q4_0 kernel does enough arithmetic per cache line that the hardware
// prefetchers alone keep too few misses in flight (it read weights at half
// the machine's read bandwidth with 2 threads). So decode gives each thread
// one contiguous run of groups, and the kernel can ask for the line this many
// bytes further along it, into L2. Over 2 MiB pages the hardware prefetchers
// do better alone (a token's matrices streamed at ~100% of the triad without
// software prefetch, ~90% with it), so the caller turns it off there. (The
// plain-row dot kernels of Q8_0 and F16 do less work per line; measured,
// prefetching them was slower.)
inline constexpr int64_t kPrefetchAhead = 32 * 1024;
inline constexpr int64_t kPackPairBytes = 2 * 256 + 2 * 16 * 2;  // 576
inline constexpr int64_t packed_q4_0x16_group_bytes(int64_t nb) { return (nb + 1) / 2 * kPackPairBytes; }
// Where block b's nibbles and its 16 scales start within a group.
inline constexpr int64_t packed_q4_0x16_nibbles_offset(int64_t b) { return b / 2 * kPackPairBytes + b % 2 * 256; }
inline constexpr int64_t packed_q4_0x16_scales_offset(int64_t b) { return b / 2 * kPackPairBytes + 512 + b % 2 * 32; }
void pack_q4_0x16(const BlockQ4_0* rows, int64_t groups, int64_t nb, std::byte* out);

// Attention of the g query heads that share one KV head, over keys [j0, j1)
// of one sequence in a paged cache: key j is in slot
// blocks[j / block_size] * block_size + j % block_size, at k + slot * slot_bytes
// (the KV head's row; v likewise). Keys and values are read once for all g heads.
struct AttendArgs {
  const std::byte* k;
  const std::byte* v;
  int64_t slot_bytes;
  const int32_t* blocks;
  int64_t block_size;
  const float* q;  // g rows of D floats, one after the other
  int64_t g, D;
  float scale;     // score = scale * dot(q, k)
  int64_t j0, j1;  // j0 <= j1 (an empty range gives m = -inf, l = 0, o = 0)
};
// Keys per step of the attention kernels at most (the online softmax
// rescales once a step).
inline constexpr int64_t kAttendTile = 64;
// Scratch floats an attention kernel needs: scores of a step, that step's
// keys and values (converted from F16 or padded to whole vectors), q and the
// output padded likewise, and 4 numbers per head.
inline constexpr int64_t attend_scratch_floats(int64_t g, int64_t D) {
  const int64_t dp = (D + 15) / 16 * 16, gp = (g + 15) / 16 * 16;  // whole vectors on any instruction set
  return g * kAttendTile + 2 * kAttendTile * dp + 2 * g * dp + 4 * gp;
}

struct Kernels {
  const char* name;
  // x[n] -> q, d, s, o8 (n a multiple of 32).
  void (*quantize_row)(const float* x, int64_t n, int8_t* q, float* d, float* s, int32_t* o8);
  // Dot products of one weight row with one activation row (nb blocks / n elements).
  float (*dot_q4_0)(const BlockQ4_0* w, QRow x, int64_t nb);
  float (*dot_q8_0)(const BlockQ8_0* w, QRow x, int64_t nb);
  float (*dot_f16)(const uint16_t* w, const float* x, int64_t n);
  float (*dot_bf16)(const uint16_t* w, const float* x, int64_t n);
  float (*dot_f32)(const float* w, const float* x, int64_t n);
  // y[i] += a * v[i]
  void (*axpy_f32)(float a, const float* v, float* y, int64_t n);
  // Runs `iterations` rounds of independent FMA chains; returns the FLOPs done
  // (for measuring the machine's peak arithmetic rate).
  double (*fma_peak)(int64_t iterations);
  // The same for int8 dot products (the arithmetic of the quantized matmuls):
  // returns the integer operations done, 2 per byte multiply-add.
  double (*dot8_peak)(int64_t iterations);
  // Tiled products of m weight rows (row stride wstride bytes) with n rows of
  // x: y[j * ldy + i] = dot(weight row i, x row j). Quantized weights take
  // quantized rows of x (nb blocks each), float weights float rows (k elements).
  void (*gemm_q4_0)(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
                    int64_t ldy);
  void (*gemm_q8_0)(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
                    int64_t ldy);
  void (*gemm_f32)(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k,
                   float* y, int64_t ldy);
  void (*gemm_f16)(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k,
                   float* y, int64_t ldy);
  void (*gemm_bf16)(const std::byte* w, int64_t wstride, int64_t m, const float* const* x, int64_t n, int64_t k,
                    float* y, int64_t ldy);
  // K-quant weight rows (nsb super-blocks of 256) with a quantized row of x.
  float (*dot_q4_k)(const BlockQ4_K* w, QRow x, int64_t nsb);
  float (*dot_q6_k)(const BlockQ6_K* w, QRow x, int64_t nsb);
  // Tiled K-quant products (nb counts 32-blocks of x, a multiple of 8).
  void (*gemm_q4_k)(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
                    int64_t ldy);
  void (*gemm_q6_k)(const std::byte* w, int64_t wstride, int64_t m, const QRow* x, int64_t n, int64_t nb, float* y,
                    int64_t ldy);
  // Interleaved Q4_0 (pack_q4_0x16): `groups` groups of 16 rows. gemv:
  // y[16 g + i] = dot(row 16 g + i, x); gemm: y[j * ldy + 16 g + i] for n rows of x.
  // gemv prefetches its stream kPrefetchAhead ahead but not past prefetch_end
  // (the end of its run; w itself turns prefetching off).
  void (*gemv_q4_0x16)(const std::byte* w, int64_t groups, int64_t nb, QRow x, float* y, const std::byte* prefetch_end);
  void (*gemm_q4_0x16)(const std::byte* w, int64_t groups, const QRow* x, int64_t n, int64_t nb, float* y,
                       int64_t ldy);
  // y[i] = e^x[i], within 2 ulp for results >= 2^-126; 0 below x = -104,
  // x clamped to 88.7 above.
  void (*exp_f32)(const float* x, float* y, int64_t n);
  // Attention over an F32 / F16 cache (AttendArgs). The result is a partial
  // softmax, mergeable with those of other key ranges: per head h, m[h] is
  // the largest score, l[h] the sum of e^(score - m[h]), and o[h * D + d] the
  // sum of e^(score - m[h]) * value[d] (not divided by l). scratch holds
  // attend_scratch_floats(g, D) floats.
  void (*attend_f32)(const AttendArgs& a, float* m, float* l, float* o, float* scratch);
  void (*attend_f16)(const AttendArgs& a, float* m, float* l, float* o, float* scratch);
  // o[i] = g[i] / (1 + e^-g[i]) * u[i] (within a few ulp of the float64 value).
  void (*swiglu_f32)(const float* g, const float* u, float* o, int64_t n);
};

// The fastest kernels this CPU can run (or the LOOM_CPU_ISA override).
const Kernels& kernels();
// Every compiled kernel set this CPU can run, best last.
std::vector<const Kernels*> available_kernels();

// Per-ISA tables (defined in kernels_<isa>.cpp, only those compiled for this architecture exist).
extern const Kernels kKernelsScalar;
#if defined(__x86_64__)
extern const Kernels kKernelsAvx2;
extern const Kernels kKernelsAvx512;
#endif
#if defined(__aarch64__)
extern const Kernels kKernelsNeon;
extern const Kernels kKernelsNeonDot;
#endif

}  // namespace loom::backend::cpu::simd
