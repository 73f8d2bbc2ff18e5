// KV cache writes and causal attention over a paged KV cache. Threads split
// (token, head) pairs; each pair makes one pass for scores, a softmax, and
// one pass over the values.
#include <cmath>
#include <cstring>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/backend/kernel_checks.h"
#include "loom/core/half.h"

namespace loom::backend::cpu {

namespace {

inline int32_t i32_at(const Tensor& v, int64_t i) {
  return *reinterpret_cast<const int32_t*>(v.data() + i * v.stride(0));
}

}  // namespace

void kv_store(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &src = in[1], &slots = in[2];
  check_indices(slots, out.dim(0), "kv_store", "slots");
  const Rows s(src);
  const int64_t T = src.dim(0), H = src.dim(1), D = src.dim(2);
  std::byte* cache = out.data();
  const int64_t slot_bytes = out.stride(0), head_bytes = out.stride(1);
  const DType dt = out.dtype();
  ctx.for_chunks(T * H, 64, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / H, h = i % H;
      const float* row = s.as<const float>(i);
      std::byte* dst = cache + i32_at(slots, t) * slot_bytes + h * head_bytes;
      if (dt == DType::F32) {
        std::memcpy(dst, row, size_t(D) * 4);
      } else {
        auto* o = reinterpret_cast<uint16_t*>(dst);
        for (int64_t d = 0; d < D; ++d) o[d] = f32_to_f16(row[d]);
      }
    }
  });
}

void attention(Context& ctx, const graph::Attention& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &q = in[0], &k = in[1], &v = in[2], &pos = in[3], &seq = in[4], &table = in[5];
  check_attention_indices(pos, seq, table, k.dim(0), p.block_size);
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const Rows qr(q);
  const std::byte* kb = k.data();
  const std::byte* vb = v.data();
  const int64_t slot_bytes = k.stride(0), head_bytes = k.stride(1);
  const DType dt = k.dtype();
  const int bs = p.block_size;
  int64_t max_n = 0;
  for (int64_t t = 0; t < T; ++t) max_n = std::max<int64_t>(max_n, i32_at(pos, t) + 1);
  float* o = out.data_as<float>();
  const simd::Kernels& kern = simd::kernels();

  ctx.for_chunks(T * Hq, 1, [&](int64_t i0, int64_t i1, int thread) {
    float* scratch = ctx.scratch(thread, size_t(max_n + D));
    float* score = scratch;
    float* acc = scratch + max_n;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / Hq, h = i % Hq, kvh = h / group;
      const int64_t n = i32_at(pos, t) + 1;
      const auto* blocks = reinterpret_cast<const int32_t*>(table.data() + i32_at(seq, t) * table.stride(0));
      const float* qv = qr.as<const float>(i);
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t slot = int64_t(blocks[j / bs]) * bs + j % bs;
        const std::byte* kp = kb + slot * slot_bytes + kvh * head_bytes;
        const float dot = dt == DType::F32 ? kern.dot_f32(reinterpret_cast<const float*>(kp), qv, D)
                                           : kern.dot_f16(reinterpret_cast<const uint16_t*>(kp), qv, D);
        score[j] = dot * p.scale;
        mx = std::max(mx, score[j]);
      }
      float sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += (score[j] = std::exp(score[j] - mx));
      const float inv = 1.0f / sum;
      std::fill(acc, acc + D, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t slot = int64_t(blocks[j / bs]) * bs + j % bs;
        const std::byte* vp = vb + slot * slot_bytes + kvh * head_bytes;
        if (dt == DType::F32)
          kern.axpy_f32(score[j] * inv, reinterpret_cast<const float*>(vp), acc, D);
        else
          kern.axpy_f16(score[j] * inv, reinterpret_cast<const uint16_t*>(vp), acc, D);
      }
      std::memcpy(o + i * D, acc, size_t(D) * 4);
    }
  });
}

}  // namespace loom::backend::cpu
