#include "loom/backend/cpu/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "loom/backend/cpu/cpu_context.h"
#include "loom/backend/cpu/simd/kernels.h"
#include "loom/backend/host_backend.h"
#include "loom/core/error.h"
#include "loom/core/overloaded.h"

namespace loom::backend {

namespace {

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

  // Q4_0 weight matrices with a multiple of 16 rows get an interleaved copy
  // for the kernels (cpu::simd::pack_q4_0x16), made once per weight and shared by
  // every graph. A weight read only by matmuls and mapped from a file then
  // has its file pages dropped from this process (MADV_DONTNEED), so memory
  // holds one copy; the file stays the source if anything reads it again.
  // LOOM_CPU_REPACK=0 turns repacking off (for A/B measurements).
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
    for (int i = 0; i < g.size(); ++i) {
      const graph::Node& n = g.node(i);
      if (!std::holds_alternative<graph::Constant>(n.op) || matmul_uses[size_t(i)] == 0) continue;
      const Tensor& w = n.tensor;
      if (w.dtype() != DType::Q4_0 || w.rank() != 2 || !w.contiguous() || w.dim(0) % cpu::simd::kPackRows != 0 ||
          !w.buffer()->host_data())
        continue;
      if (ctx_.packed(w)) continue;
      const int64_t groups = w.dim(0) / cpu::simd::kPackRows, nb = w.dim(1) / 32;
      const int64_t gstride = cpu::simd::packed_q4_0x16_group_bytes(nb);
      auto packed = allocate(size_t(groups * gstride));
      const auto* src = reinterpret_cast<const BlockQ4_0*>(w.data());
      ctx_.for_chunks(groups, 16, [&](int64_t g0, int64_t g1, int) {
        cpu::simd::pack_q4_0x16(src + g0 * cpu::simd::kPackRows * nb, g1 - g0, nb, packed->host_data() + g0 * gstride);
      });
      cache[w.data()] = {w.buffer(), w.nbytes(), std::move(packed)};
      const auto* imported = dynamic_cast<const ImportedBuffer*>(w.buffer().get());
      if (other_uses[size_t(i)] == 0 && imported && imported->file_backed()) {
        const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
        const auto begin = (reinterpret_cast<uintptr_t>(w.data()) + page - 1) / page * page;
        const auto end = (reinterpret_cast<uintptr_t>(w.data()) + w.nbytes()) / page * page;
        if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
      }
    }
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
