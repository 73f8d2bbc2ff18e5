// Shared machinery of backends whose memory is host RAM (reference, cpu):
// aligned buffers, zero-copy import of mapped files, and an executable that
// runs a planned graph node by node through the backend's `compute`.
// A host backend only writes its kernels.
#pragma once

#include <span>

#include "loom/backend/backend.h"

namespace loom::backend {

// Host memory owned by loom, 64-byte aligned. With `huge_pages`, the memory is
// aligned to 2 MiB and asks the kernel for transparent huge pages (Linux,
// madvise), for large buffers streamed through once per step such as repacked
// weights: under virtualisation a 4 KiB page walk per 4 KiB of a read stream
// costs a fifth of the bandwidth a single stream per core gets.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes, bool huge_pages = false);
  ~HostBuffer() override;
  size_t size() const override { return size_; }
  std::byte* host_data() const override { return data_; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Host memory owned by someone else (a file mapping), kept alive by a handle.
class ImportedBuffer final : public Buffer {
 public:
  ImportedBuffer(const void* data, size_t bytes, std::shared_ptr<const void> keep_alive, bool file_backed)
      : data_(static_cast<std::byte*>(const_cast<void*>(data))),
        size_(bytes),
        keep_alive_(std::move(keep_alive)),
        file_backed_(file_backed) {}
  size_t size() const override { return size_; }
  std::byte* host_data() const override { return data_; }
  // A read-only file mapping: pages dropped with MADV_DONTNEED come back from the file.
  bool file_backed() const { return file_backed_; }

 private:
  std::byte* data_;  // not written by loom: weights are read-only constants
  size_t size_;
  std::shared_ptr<const void> keep_alive_;
  bool file_backed_;
};

class HostBackend : public Backend {
 public:
  std::shared_ptr<Buffer> allocate(size_t bytes) override;
  std::shared_ptr<Buffer> import_host(const void* data, size_t bytes, std::shared_ptr<const void> keep_alive,
                                      bool file_backed = false) override;
  void upload(const Tensor& dst, const void* src, size_t bytes) override;
  void download(const Tensor& src, void* dst, size_t bytes) override;
  std::unique_ptr<Executable> compile(const graph::Graph& g) override;
  void synchronize() override {}

  // Runs one node. `in` holds the node's input tensors; `out` is its output
  // (for in-place nodes, the same memory as in[0]). Data-dependent checks
  // (ids, slots out of range) throw loom::Error from the calling thread.
  virtual void compute(const graph::Node& node, std::span<const Tensor> in, const Tensor& out) = 0;
  // Called by compile() before anything else: a backend may prepare its
  // constants (e.g. repack weights for its kernels). Same results either way.
  virtual void prepare(const graph::Graph&) {}
};

}  // namespace loom::backend
