// Mixture-of-experts feed-forward, and the small gating ops around it
// (sigmoid, per-row scaling). Routing runs on the calling thread: every token
// picks its experts and the tokens are grouped by expert. Then two parallel
// passes, each dequantizing a selected expert's weight row once per batch and
// never touching an unselected expert:
//   1. over (active expert, block of F rows): act[slot, f] = silu(gate_f . x) * (up_f . x)
//      for every (token, choice) slot routed to that expert;
//   2. over blocks of C output columns: out[t, c] = sum over experts, in index
//      order, of w[slot] * (down_c . act[slot]) — disjoint columns per thread,
//      so there is no reduction between threads and the result does not
//      depend on the thread count.
#include <cmath>
#include <cstring>

#include "loom/backend/cpu/cpu_context.h"

namespace loom::backend::cpu {

namespace {

constexpr int64_t kRowBlock = 16;  // weight rows per work item

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Row `r` of a weight as floats: in place for F32, else dequantized into `tmp`.
inline const float* weight_row(const std::byte* row, DType dt, float* tmp, int64_t n) {
  if (dt == DType::F32) return reinterpret_cast<const float*>(row);
  dequantize_row(dt, row, tmp, n);
  return tmp;
}

// Carves typed arrays out of one workspace, each 64-byte aligned.
class Carver {
 public:
  explicit Carver(size_t* total) : total_(total) {}
  template <typename T>
  T* take(std::byte* base, size_t n) {
    const size_t at = (*total_ + 63) / 64 * 64;
    *total_ = at + n * sizeof(T);
    return base ? reinterpret_cast<T*>(base + at) : nullptr;
  }

 private:
  size_t* total_;
};

}  // namespace

void sigmoid(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(xr.count(), std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      float* o = orow.as<float>(r);
      for (int64_t c = 0; c < C; ++c) o[c] = 1.0f / (1.0f + std::exp(-x[c]));
    }
  });
}

void scale_rows(Context& ctx, std::span<const Tensor> in, const Tensor& out) {
  const Rows xr(in[0]), sr(in[1]), orow(out);
  const int64_t C = in[0].dim(-1);
  ctx.for_chunks(xr.count(), std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = xr.as<const float>(r);
      const float f = sr.as<const float>(r)[0];
      float* o = orow.as<float>(r);
      for (int64_t c = 0; c < C; ++c) o[c] = x[c] * f;
    }
  });
}

void moe_ffn(Context& ctx, const graph::MoeFfn& p, std::span<const Tensor> in, const Tensor& out) {
  const Tensor &x = in[0], &probs = in[1], &gate = in[2], &up = in[3], &down = in[4];
  const Rows xr(x), pr(probs);
  const int64_t T = x.dim(0), C = x.dim(1), E = probs.dim(1), F = gate.dim(1), K = p.n_used, S = T * K;

  // Workspace: routing tables and the activations of every (token, choice) slot.
  size_t bytes = 0;
  auto layout = [&](std::byte* base) {
    bytes = 0;
    Carver carve(&bytes);
    struct {
      int32_t* expert;   // [S] expert of each slot (slot = t * K + j)
      float* weight;     // [S] its routing weight
      int32_t* start;    // [E + 1] first entry of each expert in `slots`
      int32_t* slots;    // [S] slots grouped by expert, tokens in order
      int32_t* cursor;   // [E] next free entry of each expert while grouping
      int32_t* active;   // [E] experts with at least one slot
      float* act;        // [S, F]
    } w{carve.take<int32_t>(base, size_t(S)),     carve.take<float>(base, size_t(S)),
        carve.take<int32_t>(base, size_t(E + 1)), carve.take<int32_t>(base, size_t(S)),
        carve.take<int32_t>(base, size_t(E)),     carve.take<int32_t>(base, size_t(E)),
        carve.take<float>(base, size_t(S * F))};
    return w;
  };
  layout(nullptr);
  const auto w = layout(ctx.workspace(bytes));

  // Routing (op.h): the K largest probabilities, ties to the lower index; a NaN never wins.
  for (int64_t t = 0; t < T; ++t) {
    const float* pt = pr.as<const float>(t);
    int32_t* chosen = w.expert + t * K;
    float total = 0;
    for (int64_t j = 0; j < K; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t i = 0; i < j; ++i) taken = taken || chosen[i] == e;
        if (!taken && (best < 0 || pt[e] > pt[best])) best = e;
      }
      chosen[j] = int32_t(best);
      total += pt[best];
    }
    for (int64_t j = 0; j < K; ++j) {
      const float pe = pt[chosen[j]];
      w.weight[t * K + j] = (p.normalize ? pe / total : pe) * p.scale;
    }
  }
  std::fill(w.start, w.start + E + 1, 0);
  for (int64_t s = 0; s < S; ++s) ++w.start[w.expert[s] + 1];
  int64_t n_active = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (w.start[e + 1] > 0) w.active[n_active++] = int32_t(e);
    w.start[e + 1] += w.start[e];
  }
  std::copy(w.start, w.start + E, w.cursor);
  for (int64_t s = 0; s < S; ++s) w.slots[w.cursor[w.expert[s]]++] = int32_t(s);

  // Pass 1: gate and up projections of the selected experts.
  const DType gdt = gate.dtype(), ddt = down.dtype();
  const int64_t f_blocks = (F + kRowBlock - 1) / kRowBlock;
  ctx.for_chunks(n_active * f_blocks, 1, [&](int64_t i0, int64_t i1, int thread) {
    float* tmp = ctx.scratch(thread, size_t(2 * C));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e = w.active[i / f_blocks], f0 = (i % f_blocks) * kRowBlock, f1 = std::min(F, f0 + kRowBlock);
      for (int64_t f = f0; f < f1; ++f) {
        const float* g = weight_row(gate.data() + e * gate.stride(0) + f * gate.stride(1), gdt, tmp, C);
        const float* u = weight_row(up.data() + e * up.stride(0) + f * up.stride(1), gdt, tmp + C, C);
        for (int32_t k = w.start[e]; k < w.start[e + 1]; ++k) {
          const int32_t s = w.slots[k];
          const float* xt = xr.as<const float>(s / K);
          const float gv = dot(g, xt, C), uv = dot(u, xt, C);
          w.act[int64_t(s) * F + f] = gv / (1.0f + std::exp(-gv)) * uv;
        }
      }
    }
  });

  // Pass 2: down projections, weighted and summed per token.
  float* o = out.data_as<float>();  // contiguous [T, C]
  const int64_t c_blocks = (C + kRowBlock - 1) / kRowBlock;
  ctx.for_chunks(c_blocks, 1, [&](int64_t b0, int64_t b1, int thread) {
    float* tmp = ctx.scratch(thread, size_t(F));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t c0 = b * kRowBlock, c1 = std::min(C, c0 + kRowBlock);
      for (int64_t t = 0; t < T; ++t) std::fill(o + t * C + c0, o + t * C + c1, 0.0f);
      for (int64_t a = 0; a < n_active; ++a) {
        const int64_t e = w.active[a];
        for (int64_t c = c0; c < c1; ++c) {
          const float* d = weight_row(down.data() + e * down.stride(0) + c * down.stride(1), ddt, tmp, F);
          for (int32_t k = w.start[e]; k < w.start[e + 1]; ++k) {
            const int32_t s = w.slots[k];
            o[(s / K) * C + c] += w.weight[s] * dot(d, w.act + int64_t(s) * F, F);
          }
        }
      }
    }
  });
}

}  // namespace loom::backend::cpu
