#include "loom/backend/host_backend.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "loom/core/error.h"
#include "loom/graph/planner.h"

namespace loom::backend {

namespace {
constexpr size_t kAlignment = 64;
constexpr size_t kHugePage = size_t(2) << 20;
}  // namespace

HostBuffer::HostBuffer(size_t bytes, bool huge_pages) : size_(bytes) {
  huge_pages = huge_pages && bytes >= kHugePage;
  const size_t align = huge_pages ? kHugePage : kAlignment;
  const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  data_ = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
  if (!data_) fail("[backend] out of memory allocating {} bytes", bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge_pages) ::madvise(data_, rounded, MADV_HUGEPAGE);  // a hint: fine if the kernel says no
#endif
}

HostBuffer::~HostBuffer() { std::free(data_); }

std::shared_ptr<Buffer> HostBackend::allocate(size_t bytes) { return std::make_shared<HostBuffer>(bytes); }

std::shared_ptr<Buffer> HostBackend::import_host(const void* data, size_t bytes, std::shared_ptr<const void> keep_alive,
                                                 bool file_backed) {
  return std::make_shared<ImportedBuffer>(data, bytes, std::move(keep_alive), file_backed);
}

void HostBackend::upload(const Tensor& dst, const void* src, size_t bytes) {
  LOOM_CHECK(dst.contiguous() && bytes == dst.nbytes(), "[backend] upload of {} bytes into {} ({} bytes)", bytes,
             dst.str(), dst.contiguous() ? dst.nbytes() : 0);
  std::memcpy(dst.data(), src, bytes);
}

void HostBackend::download(const Tensor& src, void* dst, size_t bytes) {
  LOOM_CHECK(src.contiguous() && bytes == src.nbytes(), "[backend] download of {} bytes from {}", bytes, src.str());
  std::memcpy(dst, src.data(), bytes);
}

namespace {

class HostExecutable final : public Executable {
 public:
  HostExecutable(HostBackend& backend, const graph::Graph& g) : backend_(backend) {
    const int n = g.size();
    for (int i = 0; i < n; ++i) {
      if (!backend.supports(g, g.node(i)))
        fail("[backend] {} has no kernel for node {} ({} {}{}{}); try another backend", backend.name(), i,
             graph::op_name(g.node(i).op), name(g.node(i).dtype), g.node(i).shape.str(),
             g.node(i).name.empty() ? "" : " '" + g.node(i).name + "'");
    }
    const graph::MemoryPlan plan = graph::plan_memory(g, kAlignment);
    arena_ = backend.allocate(plan.arena_bytes);
    nodes_.reserve(size_t(n));
    tensors_.resize(size_t(n));
    for (int i = 0; i < n; ++i) {
      const graph::Node& node = g.node(i);
      Tensor& t = tensors_[size_t(i)];
      if (std::holds_alternative<graph::Constant>(node.op)) {
        t = node.tensor;
      } else if (graph::is_alias(node)) {
        const Tensor& base = tensors_[size_t(node.inputs[0])];
        const size_t off = std::holds_alternative<graph::View>(node.op) ? std::get<graph::View>(node.op).offset : 0;
        t = base.with_strides(node.shape, node.strides, off);
      } else {
        t = Tensor(arena_, size_t(plan.offsets[size_t(i)]), node.dtype, node.shape);
      }
    }
    inputs_.resize(size_t(n));
    for (int i = 0; i < n; ++i) {
      const graph::Node& node = g.node(i);
      for (int in : node.inputs) inputs_[size_t(i)].push_back(tensors_[size_t(in)]);
      const bool leaf = std::holds_alternative<graph::Input>(node.op) ||
                        std::holds_alternative<graph::Constant>(node.op) ||
                        std::holds_alternative<graph::View>(node.op);
      if (!leaf) steps_.push_back(i);
      nodes_.push_back(node);
      nodes_.back().tensor = Tensor();  // the executable holds its own reference in tensors_
    }
    graph_ = &g;
  }

  void set_input(graph::Value input, const void* data, size_t bytes) override {
    const auto id = size_t(check_node(input, "set_input"));
    LOOM_CHECK(std::holds_alternative<graph::Input>(nodes_[id].op), "[backend] set_input: node {} is not an input",
               id);
    backend_.upload(tensors_[id], data, bytes);
  }

  void run() override {
    for (int i : steps_) backend_.compute(nodes_[size_t(i)], inputs_[size_t(i)], tensors_[size_t(i)]);
  }

  void read(graph::Value output, void* dst, size_t bytes) override {
    const auto id = size_t(check_node(output, "read"));
    LOOM_CHECK(nodes_[id].is_output, "[backend] read: node {} is not marked as an output", id);
    backend_.download(tensors_[id], dst, bytes);
  }

 private:
  int check_node(graph::Value v, const char* what) const {
    LOOM_CHECK(v.valid() && &v.graph() == graph_ && v.id() >= 0 && v.id() < int(nodes_.size()),
               "[backend] {}: value is not from the compiled graph", what);
    return v.id();
  }

  HostBackend& backend_;
  const graph::Graph* graph_ = nullptr;
  std::shared_ptr<Buffer> arena_;
  std::vector<graph::Node> nodes_;
  std::vector<Tensor> tensors_;
  std::vector<std::vector<Tensor>> inputs_;
  std::vector<int> steps_;
};

}  // namespace

std::unique_ptr<Executable> HostBackend::compile(const graph::Graph& g) {
  prepare(g);
  return std::make_unique<HostExecutable>(*this, g);
}

}  // namespace loom::backend
