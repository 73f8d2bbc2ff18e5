// Backend: where tensors live and graphs run. One small interface; a new chip
// is a new implementation registered by name, and nothing else changes.
// `reference` is plain scalar C++ (the oracle every backend is tested
// against); `cpu` is the fast multithreaded one.
//
//   auto be = backend::create("cpu", {.threads = 4});
//   Tensor w = be->import_host(ptr, bytes, keep_alive) ...;   // zero-copy where possible
//   auto exe = be->compile(graph);        // plans memory once
//   exe->set_input(tokens, ids.data(), ids.size() * 4);
//   exe->run();
//   exe->read(logits, out.data(), out.size() * 4);
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/graph/graph.h"

namespace loom::backend {

struct BackendOptions {
  int threads = 0;  // 0: one per hardware thread
};

// A graph prepared for one backend: memory planned and allocated, ready to
// run any number of times with new input data. Running allocates nothing.
class Executable {
 public:
  virtual ~Executable() = default;
  // Copies host data into an Input node (exactly the node's byte size).
  virtual void set_input(graph::Value input, const void* data, size_t bytes) = 0;
  virtual void run() = 0;
  // Copies an output node (marked with Graph::mark_output) to host memory.
  virtual void read(graph::Value output, void* dst, size_t bytes) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Device memory.
  virtual std::shared_ptr<Buffer> allocate(size_t bytes) = 0;
  // Makes host memory (e.g. a memory-mapped weight file) usable by the
  // backend. Host-visible backends use it in place; others copy it.
  // `keep_alive` is held as long as the returned buffer lives. `file_backed`:
  // the memory is a read-only file mapping, whose pages the backend may drop
  // and have read back from the file (never true of ordinary memory).
  virtual std::shared_ptr<Buffer> import_host(const void* data, size_t bytes, std::shared_ptr<const void> keep_alive,
                                              bool file_backed = false) = 0;
  // Copies between host memory and a contiguous tensor of this backend.
  virtual void upload(const Tensor& dst, const void* src, size_t bytes) = 0;
  virtual void download(const Tensor& src, void* dst, size_t bytes) = 0;

  // Whether the backend has a kernel for this node (op, dtypes, shapes).
  virtual bool supports(const graph::Graph& g, const graph::Node& node) const = 0;
  // Plans memory and binds buffers; throws if some node is not supported.
  virtual std::unique_ptr<Executable> compile(const graph::Graph& g) = 0;
  // Waits until all work issued so far has finished.
  virtual void synchronize() = 0;

  int threads() const { return threads_; }

 protected:
  int threads_ = 1;
};

// --- registry ---------------------------------------------------------------

using BackendFactory = std::function<std::unique_ptr<Backend>(const BackendOptions&)>;

// Registers a backend under `name` (the only global mutable state in loom).
void register_backend(std::string name, BackendFactory factory);
// Names of all registered backends, the built-in ones first ("cpu", "reference").
std::vector<std::string> backend_names();
// Creates a backend by name; throws a loom::Error listing the known names.
std::unique_ptr<Backend> create(std::string_view name, const BackendOptions& options = {});

}  // namespace loom::backend
