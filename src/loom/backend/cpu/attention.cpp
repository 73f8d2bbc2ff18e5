// KV cache writes and causal attention over a paged KV cache (the attend
// kernels of the SIMD layer do the arithmetic).
#include <algorithm>
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

// Work units are (token, KV head, range of keys): the attend kernel reads
// each key and value once for the whole group of query heads sharing the KV
// head. Decoding has only a few KV heads (2 to 8) per token, so their keys
// are split into ranges until every thread has several units, and the
// partial softmaxes are merged afterwards.
void attention(Context& ctx, const graph::Attention& p, std::span<const Tensor> in, const Tensor& out) {
  constexpr int64_t kUnitsPerThread = 4;  // enough for the dynamic chunking to even out
  constexpr int64_t kMinRangeKeys = 128;  // below this, merging would cost more than it shares
  const Tensor &q = in[0], &k = in[1], &v = in[2], &pos = in[3], &seq = in[4], &table = in[5];
  check_attention_indices(pos, seq, table, k.dim(0), p.block_size);
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(1), group = Hq / Hkv;
  const Rows qr(q);
  const bool q_dense = q.stride(1) == D * 4;  // a group's query rows are one block
  const int64_t head_bytes = k.stride(1);
  const simd::Kernels& kern = simd::kernels();
  const auto attend = k.dtype() == DType::F32 ? kern.attend_f32 : kern.attend_f16;
  int64_t max_n = 0;
  for (int64_t t = 0; t < T; ++t) max_n = std::max<int64_t>(max_n, i32_at(pos, t) + 1);
  const int64_t pairs = T * Hkv, want = kUnitsPerThread * ctx.threads();
  int64_t splits = 1;
  if (ctx.threads() > 1 && pairs < want)
    splits = std::max<int64_t>(1, std::min((want + pairs - 1) / pairs, max_n / kMinRangeKeys));
  // A split unit's partial result: o (group x D), then m and l (group each).
  const int64_t part = group * (D + 2);
  float* parts = splits > 1 ? reinterpret_cast<float*>(ctx.workspace(size_t(pairs * splits * part) * 4)) : nullptr;
  float* o = out.data_as<float>();
  const int64_t scratch_floats = simd::attend_scratch_floats(group, D);

  ctx.for_chunks(pairs * splits, 1, [&](int64_t u0, int64_t u1, int thread) {
    float* scratch = ctx.scratch(thread, size_t(scratch_floats + group * (D + 2)));
    float* ml = scratch + scratch_floats;  // m and l of an unsplit unit
    float* qg = ml + 2 * group;            // the group's query rows, if strided
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t t = u / (Hkv * splits), kvh = u / splits % Hkv, s = u % splits;
      const int64_t n = i32_at(pos, t) + 1, row = t * Hq + kvh * group;
      simd::AttendArgs a;
      a.k = k.data() + kvh * head_bytes;
      a.v = v.data() + kvh * head_bytes;
      a.slot_bytes = k.stride(0);
      a.blocks = reinterpret_cast<const int32_t*>(table.data() + i32_at(seq, t) * table.stride(0));
      a.block_size = p.block_size;
      a.q = qr.as<const float>(row);
      if (!q_dense) {
        for (int64_t h = 0; h < group; ++h) std::memcpy(qg + h * D, qr.as<const float>(row + h), size_t(D) * 4);
        a.q = qg;
      }
      a.g = group;
      a.D = D;
      a.scale = p.scale;
      a.j0 = n * s / splits;  // may be empty when a token has fewer keys than splits
      a.j1 = n * (s + 1) / splits;
      if (splits > 1) {
        float* pu = parts + u * part;
        attend(a, pu + group * D, pu + group * D + group, pu, scratch);
        continue;
      }
      float* ou = o + row * D;
      attend(a, ml, ml + group, ou, scratch);
      for (int64_t h = 0; h < group; ++h) {
        const float inv = 1.0f / ml[group + h];
        for (int64_t d = 0; d < D; ++d) ou[h * D + d] *= inv;
      }
    }
  });
  if (splits == 1) return;

  // Merge the ranges of each query head: rescale each to the largest maximum.
  // (A decoding step's few heads stay on this thread.)
  ctx.for_chunks(T * Hq, std::max<int64_t>(1, 16384 / (splits * D)), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / Hq, kvh = i % Hq / group, h = i % group;
      const float* first = parts + (t * Hkv + kvh) * splits * part;
      float mx = -INFINITY;
      for (int64_t s = 0; s < splits; ++s) mx = std::max(mx, first[s * part + group * D + h]);
      float* oi = o + i * D;
      std::fill(oi, oi + D, 0.0f);
      float sum = 0;
      for (int64_t s = 0; s < splits; ++s) {
        const float* pu = first + s * part;
        const float w = std::exp(pu[group * D + h] - mx);  // 0 for an empty range (m = -inf)
        sum += w * pu[group * D + group + h];
        for (int64_t d = 0; d < D; ++d) oi[d] += w * pu[h * D + d];
      }
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < D; ++d) oi[d] *= inv;
    }
  });
}

}  // namespace loom::backend::cpu
