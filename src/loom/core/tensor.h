// Tensor: a typed, strided view of a Buffer. Buffers are memory owned by a
// backend (host RAM, a memory-mapped file, device memory); a Tensor only
// describes where its elements are. Shapes are written outermost first, as in
// PyTorch: a weight of N rows of K elements is [N, K]. Strides are in bytes.
// For block-quantized dtypes the innermost dimension is contiguous and a whole
// number of blocks.
//
//   Tensor w(buf, 0, DType::Q4_0, {4096, 4096});
//   Tensor row = w.slice(0, 7, 1);          // [1, 4096], shares the buffer
//   float* p = t.data_as<float>();          // only for host-visible buffers
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "loom/core/dtype.h"

namespace loom {

constexpr int kMaxRank = 4;

// Memory that tensors view. Implemented by backends; core only needs to know
// its size and, for host-visible memory, its address.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual size_t size() const = 0;
  // Address of the first byte, or nullptr if the memory is not visible to the host.
  virtual std::byte* host_data() const = 0;
};

struct Shape {
  int rank = 0;
  std::array<int64_t, kMaxRank> dims{};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[size_t(i < 0 ? i + rank : i)]; }
  int64_t& operator[](int i) { return dims[size_t(i < 0 ? i + rank : i)]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  std::string str() const;  // "[2, 3]"
};

class Tensor {
 public:
  Tensor() = default;
  // A contiguous tensor of `shape` at `offset` bytes into `buffer`.
  Tensor(std::shared_ptr<Buffer> buffer, size_t offset, DType dtype, Shape shape);

  bool defined() const { return buffer_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  int64_t stride(int i) const { return strides_[size_t(i < 0 ? i + rank() : i)]; }
  const std::array<int64_t, kMaxRank>& strides() const { return strides_; }
  size_t offset() const { return offset_; }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }

  // True when the elements are laid out densely in row-major order.
  bool contiguous() const;
  // Bytes covered by a contiguous tensor.
  size_t nbytes() const;
  // Bytes of one innermost row.
  size_t row_bytes() const { return loom::row_bytes(dtype_, shape_[-1]); }

  std::byte* data() const;  // throws if the buffer is not host-visible
  template <typename T>
  T* data_as() const {
    return reinterpret_cast<T*>(data());
  }

  // Views sharing the buffer.
  Tensor reshape(Shape s) const;  // requires contiguous()
  Tensor slice(int axis, int64_t start, int64_t length) const;
  Tensor with_strides(Shape s, std::array<int64_t, kMaxRank> byte_strides, size_t extra_offset) const;

  std::string str() const;  // "f32[2, 3]"

 private:
  std::shared_ptr<Buffer> buffer_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  Shape shape_;
  std::array<int64_t, kMaxRank> strides_{};
};

// Byte strides of a dense row-major tensor.
std::array<int64_t, kMaxRank> contiguous_strides(DType dtype, const Shape& s);

}  // namespace loom
