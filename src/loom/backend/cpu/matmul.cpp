// Matrix multiplication y = x W^T for every weight dtype, on the SIMD
// kernels of simd/kernels.h. Quantized weights (Q8_0, Q4_0, Q4_K, Q6_K): the rows of x are quantized
// to int8 blocks once, then every output is an integer block dot product.
// F32/F16/BF16 weights: float dots, converting weights in registers.
// One row of x (decoding) streams each weight row once through a dot
// kernel; several rows (prompts, batches) go through tiled kernels that keep
// a 4 x 4 block of sums in registers, over blocks of kTokenBlock rows of x
// small enough to stay in L2 while every weight row passes by. Threads split
// the weight rows (output columns).
#include <algorithm>
#include <cstring>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"

namespace loom::backend::cpu {

namespace {

constexpr int64_t kTokenBlock = 64;

// Weight rows per chunk handed to a thread: enough work to amortise the
// hand-off, small enough to balance; a multiple of the 4-row tile.
int64_t row_grain(int64_t N, int64_t R, int threads) {
  const int64_t per_thread = (N + threads - 1) / threads;
  const int64_t g = std::clamp<int64_t>(per_thread / 8, 4, R > 1 ? 32 : 64);
  return (g + 3) / 4 * 4;
}

}  // namespace

void matmul(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &w = in[1];
  const Rows xr(x);
  const int64_t R = xr.count(), N = w.dim(0), K = w.dim(1);
  const Context::Packed* copy = ctx.packed(w);  // prepared by CpuBackend::prepare
  const std::byte* wbase = copy && !copy->interleaved ? copy->data() : w.data();
  const int64_t wstride = w.stride(0);
  float* y = out.data_as<float>();  // output is contiguous [R, N]
  const DType dt = w.dtype();
  const simd::Kernels& k = simd::kernels();
  const int64_t grain = row_grain(N, R, ctx.threads());

  if (traits(dt).is_quantized) {
    // Every row of x quantized once: q (K bytes), d and s (K/32 floats each),
    // o8 (K/4 int32), ob (K/32 int32), followed by the table of rows the kernels take.
    const int64_t nb = K / 32;
    // (Rounded to 64 bytes: rows start on cache lines and the table after them is aligned.)
    const size_t row_bytes = (size_t(K) + size_t(nb) * 12 + size_t(K) + 63) / 64 * 64;
    std::byte* buf = ctx.workspace(size_t(R) * (row_bytes + sizeof(simd::QRow)));
    auto* rows = reinterpret_cast<simd::QRow*>(buf + size_t(R) * row_bytes);
    struct Parts {
      int8_t* q;
      float *d, *s;
      int32_t *o8, *ob;
    };
    auto parts = [&](int64_t r) {
      std::byte* p = buf + size_t(r) * row_bytes;
      auto* d = reinterpret_cast<float*>(p + K);
      auto* o8 = reinterpret_cast<int32_t*>(d + 2 * nb);
      return Parts{reinterpret_cast<int8_t*>(p), d, d + nb, o8, o8 + K / 4};
    };
    for (int64_t r = 0; r < R; ++r) {
      const Parts p = parts(r);
      rows[r] = {p.q, p.d, p.s, p.o8, p.ob};
    }
    const std::byte* packed = copy && copy->interleaved ? copy->data() : nullptr;
    ctx.for_chunks(R, std::max<int64_t>(1, 16384 / K), [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        const Parts p = parts(r);
        k.quantize_row(xr.as<const float>(r), K, p.q, p.d, p.s, p.o8);
        if (packed)
          for (int64_t b = 0; b < nb; ++b) {
            const int32_t* o = p.o8 + b * 8;
            p.ob[b] = o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
          }
      }
    });
    if (packed) {
      // Interleaved layout: threads take groups of 16 weight rows.
      const int64_t groups = N / simd::kPackRows, gstride = simd::packed_q4_0x16_group_bytes(nb);
      const int64_t ggrain = std::max<int64_t>(1, grain / simd::kPackRows);
      if (R == 1) {
        // Decoding: one contiguous run of groups per thread, which the kernel
        // prefetches ahead of itself along the way unless the weights sit on
        // huge pages (pieces of ~64 KB; stolen pieces of one group).
        const int64_t piece = std::max<int64_t>(1, 65536 / gstride);
        const bool prefetch = !copy->huge_pages;
        ctx.for_runs(groups, piece, 1, [&](int64_t g0, int64_t g1, int64_t run_end, int) {
          k.gemv_q4_0x16(packed + g0 * gstride, g1 - g0, nb, rows[0], y + g0 * simd::kPackRows,
                         packed + (prefetch ? run_end : g0) * gstride);
        });
        return;
      }
      for (int64_t t0 = 0; t0 < R; t0 += kTokenBlock) {
        const int64_t nt = std::min(kTokenBlock, R - t0);
        ctx.for_chunks(groups, ggrain, [&](int64_t g0, int64_t g1, int) {
          k.gemm_q4_0x16(packed + g0 * gstride, g1 - g0, rows + t0, nt, nb, y + t0 * N + g0 * simd::kPackRows, N);
        });
      }
      return;
    }
    // One weight row against one row of x.
    auto dot = [&](const std::byte* wrow, const simd::QRow& xq) {
      switch (dt) {
        case DType::Q4_0: return k.dot_q4_0(reinterpret_cast<const BlockQ4_0*>(wrow), xq, nb);
        case DType::Q8_0: return k.dot_q8_0(reinterpret_cast<const BlockQ8_0*>(wrow), xq, nb);
        case DType::Q4_K: return k.dot_q4_k(reinterpret_cast<const BlockQ4_K*>(wrow), xq, nb / 8);
        default: return k.dot_q6_k(reinterpret_cast<const BlockQ6_K*>(wrow), xq, nb / 8);
      }
    };
    if (R == 1) {
      // One contiguous run of rows per thread (a forward stream for the
      // hardware prefetchers), the rest stolen 4 rows at a time.
      ctx.for_runs(N, grain, 4, [&](int64_t n0, int64_t n1, int64_t, int) {
        for (int64_t n = n0; n < n1; ++n) y[n] = dot(wbase + n * wstride, rows[0]);
      });
      return;
    }
    const auto gemm = dt == DType::Q4_0   ? k.gemm_q4_0
                      : dt == DType::Q8_0 ? k.gemm_q8_0
                      : dt == DType::Q4_K ? k.gemm_q4_k
                                          : k.gemm_q6_k;
    for (int64_t t0 = 0; t0 < R; t0 += kTokenBlock) {
      const int64_t nt = std::min(kTokenBlock, R - t0);
      ctx.for_chunks(N, grain, [&](int64_t n0, int64_t n1, int) {
        gemm(wbase + n0 * wstride, wstride, n1 - n0, rows + t0, nt, nb, y + t0 * N + n0, N);
      });
    }
    return;
  }

  if (R == 1) {
    const float* xrow = xr.as<const float>(0);
    const auto dot = dt == DType::F32 ? nullptr : dt == DType::F16 ? k.dot_f16 : k.dot_bf16;
    ctx.for_runs(N, grain, 4, [&](int64_t n0, int64_t n1, int64_t, int) {  // as for quantized rows
      for (int64_t n = n0; n < n1; ++n) {
        const std::byte* wrow = wbase + n * wstride;
        y[n] = dot ? dot(reinterpret_cast<const uint16_t*>(wrow), xrow, K)
                   : k.dot_f32(reinterpret_cast<const float*>(wrow), xrow, K);
      }
    });
    return;
  }
  auto* xrows = reinterpret_cast<const float**>(ctx.workspace(size_t(R) * sizeof(const float*)));
  for (int64_t r = 0; r < R; ++r) xrows[r] = xr.as<const float>(r);
  const auto gemm = dt == DType::F32 ? k.gemm_f32 : dt == DType::F16 ? k.gemm_f16 : k.gemm_bf16;
  for (int64_t t0 = 0; t0 < R; t0 += kTokenBlock) {
    const int64_t nt = std::min(kTokenBlock, R - t0);
    ctx.for_chunks(N, grain, [&](int64_t n0, int64_t n1, int) {
      gemm(wbase + n0 * wstride, wstride, n1 - n0, xrows + t0, nt, K, y + t0 * N + n0, N);
    });
  }
}

}  // namespace loom::backend::cpu
