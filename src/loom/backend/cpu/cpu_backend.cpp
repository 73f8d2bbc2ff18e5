#include "loom/backend/cpu/cpu_backend.h"

#include "loom/backend/cpu/cpu_context.h"
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
               },
               node.op);
  }

 private:
  cpu::Context ctx_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) { return std::make_unique<CpuBackend>(options); }

}  // namespace loom::backend
