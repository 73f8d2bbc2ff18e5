#include "loom/backend/cpu/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/backend/host_backend.h"
#include "loom/core/error.h"
#include "loom/core/overloaded.h"

namespace loom::backend {

namespace {

// Bytes of anonymous memory on transparent huge pages in this process (0 where
// the kernel does not say).
size_t anon_huge_page_bytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "AnonHugePages: %zu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

bool is_weight_dtype(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0 || t == DType::Q4_0 ||
         t == DType::Q4_K || t == DType::Q6_K;
}

class CpuBackend final : public HostBackend {
 public:
  explicit CpuBackend(const BackendOptions& o)
      : ctx_(o.threads > 0 ? o.threads : ThreadPool::hardware_threads()) {
    threads_ = ctx_.threads();
  }

  std::string_view name() const override { return "cpu"; }

  bool supports(const graph::Graph& g, const graph::Node& node) const override {
    if (std::holds_alternative<graph::MatMul>(node.op) || std::holds_alternative<graph::GetRows>(node.op))
      return is_weight_dtype(g.node(node.inputs[std::holds_alternative<graph::MatMul>(node.op) ? 1 : 0]).dtype);
    return true;
  }

  // Matrices read by matmuls get a copy the CPU backend owns, made once per
  // weight and shared by every graph: Q4_0 matrices with a multiple of 16 rows
  // interleaved for the kernels (cpu::simd::pack_q4_0x16); other matrices
  // mapped from a file and read only by matmuls copied as they are. The copies
  // of one graph share one buffer on transparent huge pages: decoding streams
  // every weight once per token, and the 4 KiB pages of a file mapping cost a
  // page walk per 4 KiB of that stream (under virtualisation, a two-level
  // walk), measured at 10-20% of the generation speed. A weight read only by
  // matmuls and mapped from a file then has its file pages dropped from this
  // process (MADV_DONTNEED), so memory holds one copy; the file stays the
  // source if anything reads it again. LOOM_CPU_REPACK=0 turns this off (for
  // A/B measurements).
  void prepare(const graph::Graph& g) override {
    static const bool enabled = [] {
      const char* e = std::getenv("LOOM_CPU_REPACK");
      return e == nullptr || std::string_view(e) != "0";
    }();
    if (!enabled) return;
    auto& cache = ctx_.packed_cache();
    std::erase_if(cache, [](const auto& e) { return e.second.source.expired(); });
    std::vector<int> matmul_uses(size_t(g.size()), 0), other_uses(size_t(g.size()), 0);
    for (int i = 0; i < g.size(); ++i) {
      const graph::Node& n = g.node(i);
      for (size_t k = 0; k < n.inputs.size(); ++k)
        (std::holds_alternative<graph::MatMul>(n.op) && k == 1 ? matmul_uses : other_uses)[size_t(n.inputs[k])]++;
    }
    struct Copy {
      const Tensor* w;
      bool interleave, drop_file_pages;
      size_t offset, bytes;
    };
    std::vector<Copy> copies;
    size_t total = 0;
    for (int i = 0; i < g.size(); ++i) {
      const graph::Node& n = g.node(i);
      if (!std::holds_alternative<graph::Constant>(n.op) || matmul_uses[size_t(i)] == 0) continue;
      const Tensor& w = n.tensor;
      if (!is_weight_dtype(w.dtype()) || w.rank() != 2 || !w.contiguous() || !w.buffer()->host_data() ||
          ctx_.packed(w) ||
          std::any_of(copies.begin(), copies.end(), [&](const Copy& c) { return c.w->data() == w.data(); }))
        continue;
      const auto* imported = dynamic_cast<const ImportedBuffer*>(w.buffer().get());
      const bool interleave = w.dtype() == DType::Q4_0 && w.dim(0) % cpu::simd::kPackRows == 0;
      const bool mapped_only = other_uses[size_t(i)] == 0 && imported && imported->file_backed();
      if (!interleave && !mapped_only) continue;
      const size_t bytes =
          interleave ? size_t(w.dim(0) / cpu::simd::kPackRows * cpu::simd::packed_q4_0x16_group_bytes(w.dim(1) / 32))
                     : w.nbytes();
      total = (total + 63) / 64 * 64;
      copies.push_back({&w, interleave, mapped_only, total, bytes});
      total += bytes;
    }
    if (copies.empty()) return;
    const size_t huge_before = anon_huge_page_bytes();
    auto memory = std::make_shared<HostBuffer>(total, /*huge_pages=*/true);
    for (const Copy& c : copies) {
      const Tensor& w = *c.w;
      std::byte* dst = memory->host_data() + c.offset;
      // The file's pages are dropped piece by piece behind the copy, so the
      // mapping and the copies never hold more than a few pieces twice.
      auto drop = [&](size_t a, size_t b) {
        if (!c.drop_file_pages) return;
        const auto page = uintptr_t(sysconf(_SC_PAGESIZE)), base = reinterpret_cast<uintptr_t>(w.data());
        const auto begin = (base + a + page - 1) / page * page, end = (base + b) / page * page;
        if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
      };
      if (c.interleave) {
        const int64_t nb = w.dim(1) / 32, gstride = cpu::simd::packed_q4_0x16_group_bytes(nb);
        const int64_t group_src_bytes = cpu::simd::kPackRows * nb * int64_t(sizeof(BlockQ4_0));
        const auto* src = reinterpret_cast<const BlockQ4_0*>(w.data());
        ctx_.for_chunks(w.dim(0) / cpu::simd::kPackRows, 16, [&](int64_t g0, int64_t g1, int) {
          cpu::simd::pack_q4_0x16(src + g0 * cpu::simd::kPackRows * nb, g1 - g0, nb, dst + g0 * gstride);
          drop(size_t(g0 * group_src_bytes), size_t(g1 * group_src_bytes));
        });
      } else {
        ctx_.for_chunks(int64_t(c.bytes), int64_t(1) << 20, [&](int64_t a, int64_t b, int) {
          std::memcpy(dst + a, w.data() + a, size_t(b - a));
          drop(size_t(a), size_t(b));
        });
      }
      drop(0, w.nbytes());  // the pages pieces shared at their edges
    }
    // Whether the kernel granted huge pages (it may not: transparent huge
    // pages off, or memory too fragmented): the Q4_0 decode kernel
    // prefetches in software only over small pages.
    const bool huge = anon_huge_page_bytes() >= huge_before + total / 2;
    for (const Copy& c : copies)
      cache[c.w->data()] = {c.w->buffer(), c.w->nbytes(), memory, c.offset, c.interleave, huge};
  }

  void compute(const graph::Node& node, std::span<const Tensor> in, const Tensor& out) override {
    using namespace cpu;
    std::visit(Overloaded{
                   [](const graph::Input&) {},
                   [](const graph::Constant&) {},
                   [](const graph::View&) {},
                   [&](const graph::GetRows&) { get_rows(ctx_, in, out); },
                   [&](const graph::MatMul&) { matmul(ctx_, in, out); },
                   [&](const graph::RmsNorm& p) { rms_norm(ctx_, p, in, out); },
                   [&](const graph::Rope& p) { rope(ctx_, p, in, out); },
                   [&](const graph::KvStore&) { kv_store(ctx_, in, out); },
                   [&](const graph::Attention& p) { attention(ctx_, p, in, out); },
                   [&](const graph::SwiGlu&) { swiglu(ctx_, in, out); },
                   [&](const graph::Add&) { add(ctx_, in, out); },
                   [&](const graph::Mul&) { mul(ctx_, in, out); },
                   [&](const graph::Scale& p) { scale(ctx_, p, in, out); },
                   [&](const graph::Softmax&) { softmax(ctx_, in, out); },
                   [&](const graph::Sigmoid&) { sigmoid(ctx_, in, out); },
                   [&](const graph::ScaleRows&) { scale_rows(ctx_, in, out); },
                   [&](const graph::MoeFfn& p) { moe_ffn(ctx_, p, in, out); },
                   [&](const graph::Fill& p) { fill(ctx_, p, out); },
                   [&](const graph::Transpose&) { transpose(ctx_, in, out); },
                   [&](const graph::SumTo&) { sum_to(ctx_, in, out); },
                   [&](const graph::CausalAttention& p) { causal_attention(ctx_, p, in, out); },
                   [&](const graph::CrossEntropy&) { cross_entropy(ctx_, in, out); },
                   [&](const graph::RmsNormBackward& p) { rms_norm_backward(ctx_, p, in, out); },
                   [&](const graph::RopeBackward& p) { rope_backward(ctx_, p, in, out); },
                   [&](const graph::SwiGluBackward& p) { swiglu_backward(ctx_, p, in, out); },
                   [&](const graph::SoftmaxBackward&) { softmax_backward(ctx_, in, out); },
                   [&](const graph::GetRowsBackward&) { get_rows_backward(ctx_, in, out); },
                   [&](const graph::SliceBackward& p) { slice_backward(ctx_, p, in, out); },
                   [&](const graph::CausalAttentionBackward& p) { causal_attention_backward(ctx_, p, in, out); },
                   [&](const graph::CrossEntropyBackward&) { cross_entropy_backward(ctx_, in, out); },
               },
               node.op);
  }

 private:
  cpu::Context ctx_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) { return std::make_unique<CpuBackend>(options); }

}  // namespace loom::backend
