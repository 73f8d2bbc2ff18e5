// State shared by the CPU kernels: the thread pool and per-thread scratch
// memory that grows to the largest size asked for and is then reused.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/core/thread_pool.h"
#include "loom/graph/op.h"

namespace loom::backend::cpu {

class Context {
 public:
  explicit Context(int threads) : pool_(threads), scratch_(size_t(threads)), runs_(new Run[size_t(threads)]) {}

  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }

  // Scratch floats for one thread, valid until the next call by that thread.
  float* scratch(int thread, size_t n) {
    auto& s = scratch_[size_t(thread)];
    if (s.size() < n) s.resize(n);
    return s.data();
  }

  // Bytes shared by all threads of one kernel call (routing tables, activations
  // between passes), 64-byte aligned, valid until the next call; grows to the
  // largest size asked for and is then reused.
  std::byte* workspace(size_t bytes) {
    if (workspace_.size() < bytes + 64) workspace_.resize(bytes + 64);
    const auto addr = reinterpret_cast<uintptr_t>(workspace_.data());
    return workspace_.data() + ((64 - addr % 64) % 64);
  }

  // Weights kept in the CPU's own memory next to their original, by the
  // address of the original data: Q4_0 matrices interleaved for the kernels,
  // other file-mapped matrices copied as they are onto huge pages. An entry is
  // valid while the original buffer lives; the backend's prepare() fills the
  // cache when a graph is compiled, kernels only look up.
  struct Packed {
    std::weak_ptr<Buffer> source;
    size_t bytes = 0;                // of the original
    std::shared_ptr<Buffer> memory;  // shared by the entries of one prepare()
    size_t offset = 0;
    bool interleaved = false;        // Q4_0 in the layout of simd::pack_q4_0x16
    bool huge_pages = false;         // the kernel got the 2 MiB pages it asked for
    const std::byte* data() const { return memory->host_data() + offset; }
  };
  const Packed* packed(const Tensor& w) const {
    const auto it = packed_.find(w.data());
    if (it == packed_.end() || it->second.source.lock() != w.buffer() || it->second.bytes != w.nbytes()) return nullptr;
    return &it->second;
  }
  std::unordered_map<const std::byte*, Packed>& packed_cache() { return packed_; }

  // Calls fn(begin, end, thread) over chunks of [0, n) of about `grain` items,
  // handed out dynamically to the pool's threads. Small jobs stay on the caller.
  template <typename F>
  void for_chunks(int64_t n, int64_t grain, F&& fn) {
    grain = std::max<int64_t>(grain, 1);
    if (n <= grain || pool_.size() == 1) {
      if (n > 0) fn(int64_t(0), n, 0);
      return;
    }
    pool_.parallel_chunks((n + grain - 1) / grain, [&](int64_t c, int thread) {
      fn(c * grain, std::min(n, (c + 1) * grain), thread);
    });
  }

  // Calls fn(begin, end, run_end, thread) over [0, n) cut into one contiguous
  // run per thread, each walked forward by its owner in pieces of `grain`
  // items, so a thread's reads form one stream a kernel can prefetch along
  // (up to run_end, the end of the run as its owner knows it). A thread done
  // with its run takes pieces of `steal_grain` from the far end of the
  // others': threads of a shared machine do not run at the same speed (in
  // decoding the faster one waited for the other 8% of the time).
  template <typename F>
  void for_runs(int64_t n, int64_t grain, int64_t steal_grain, F&& fn) {
    const int parts = threads();
    bool idle = false;
    if (n <= grain || parts == 1 || n >= (int64_t(1) << 31) || !runs_busy_.compare_exchange_strong(idle, true)) {
      if (n > 0) fn(int64_t(0), n, n, 0);  // small, or called from inside another for_runs
      return;
    }
    const int64_t per = (n + parts - 1) / parts;
    for (int p = 0; p < parts; ++p)
      runs_[size_t(p)].front_back.store(pack(std::min(n, p * per), std::min(n, (p + 1) * per)), std::memory_order_relaxed);
    pool_.parallel_chunks(parts, [&](int64_t p, int thread) {
      const int64_t own_end = std::min(n, (p + 1) * per);
      int64_t a = 0, b = 0;
      while (take(runs_[size_t(p)], grain, /*from_front=*/true, a, b)) fn(a, b, own_end, thread);
      for (int k = 1; k < parts; ++k)
        while (take(runs_[size_t((p + k) % parts)], steal_grain, /*from_front=*/false, a, b)) fn(a, b, b, thread);
    });
    runs_busy_.store(false, std::memory_order_release);
  }

 private:
  // What is left of a run: front << 32 | back, claimed with compare-exchange.
  struct alignas(64) Run {
    std::atomic<uint64_t> front_back{0};
  };
  static uint64_t pack(int64_t front, int64_t back) { return uint64_t(front) << 32 | uint64_t(back); }
  static bool take(Run& r, int64_t count, bool from_front, int64_t& a, int64_t& b) {
    uint64_t v = r.front_back.load(std::memory_order_relaxed);
    for (;;) {
      const auto f = int64_t(v >> 32), e = int64_t(v & 0xffffffffu);
      if (f >= e) return false;
      a = from_front ? f : std::max(f, e - count);
      b = from_front ? std::min(e, f + count) : e;
      if (r.front_back.compare_exchange_weak(v, from_front ? pack(b, e) : pack(f, a), std::memory_order_relaxed))
        return true;
    }
  }

  ThreadPool pool_;
  std::vector<std::vector<float>> scratch_;
  std::vector<std::byte> workspace_;
  std::unordered_map<const std::byte*, Packed> packed_;
  std::unique_ptr<Run[]> runs_;
  std::atomic<bool> runs_busy_{false};
};

// Kernels (one file per family).
void get_rows(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void matmul(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void rms_norm(Context& ctx, const graph::RmsNorm& p, std::span<const Tensor> in, const Tensor& out);
void rope(Context& ctx, const graph::Rope& p, std::span<const Tensor> in, const Tensor& out);
// The rotation of rope() for in = {x, positions[, frequency factors]}; transposed
// (the angle negated) is the gradient of rope, d x = R^T d y.
void rope_rotate(Context& ctx, const graph::Rope& p, std::span<const Tensor> in, const Tensor& out, bool transposed);
void kv_store(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void attention(Context& ctx, const graph::Attention& p, std::span<const Tensor> in, const Tensor& out);
void swiglu(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void add(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void mul(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void scale(Context& ctx, const graph::Scale& p, std::span<const Tensor> in, const Tensor& out);
void softmax(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void sigmoid(Context& ctx, std::span<const Tensor> in, const Tensor& out);     // moe.cpp
void scale_rows(Context& ctx, std::span<const Tensor> in, const Tensor& out);  // moe.cpp
void moe_ffn(Context& ctx, const graph::MoeFfn& p, std::span<const Tensor> in, const Tensor& out);
// Training ops (train.cpp).
void fill(Context& ctx, const graph::Fill& p, const Tensor& out);
void transpose(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void sum_to(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void causal_attention(Context& ctx, const graph::CausalAttention& p, std::span<const Tensor> in, const Tensor& out);
void causal_attention_backward(Context& ctx, const graph::CausalAttentionBackward& p, std::span<const Tensor> in,
                               const Tensor& out);
void cross_entropy(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void cross_entropy_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void rms_norm_backward(Context& ctx, const graph::RmsNormBackward& p, std::span<const Tensor> in, const Tensor& out);
void rope_backward(Context& ctx, const graph::RopeBackward& p, std::span<const Tensor> in, const Tensor& out);
void swiglu_backward(Context& ctx, const graph::SwiGluBackward& p, std::span<const Tensor> in, const Tensor& out);
void softmax_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void get_rows_backward(Context& ctx, std::span<const Tensor> in, const Tensor& out);
void slice_backward(Context& ctx, const graph::SliceBackward& p, std::span<const Tensor> in, const Tensor& out);

// Row helpers for kernels: the last dim is dense, leading dims are strided.
struct Rows {
  std::byte* base;
  int rank;
  int64_t dims[kMaxRank];
  int64_t strides[kMaxRank];
  explicit Rows(const Tensor& t) : base(t.data()), rank(t.rank()) {
    for (int i = 0; i < rank; ++i) {
      dims[i] = t.dim(i);
      strides[i] = t.stride(i);
    }
  }
  int64_t count() const {
    int64_t n = 1;
    for (int i = 0; i < rank - 1; ++i) n *= dims[i];
    return n;
  }
  std::byte* at(int64_t r) const {
    std::byte* p = base;
    for (int i = rank - 2; i >= 0; --i) {
      p += (r % dims[i]) * strides[i];
      r /= dims[i];
    }
    return p;
  }
  template <typename T>
  T* as(int64_t r) const {
    return reinterpret_cast<T*>(at(r));
  }
};

}  // namespace loom::backend::cpu
