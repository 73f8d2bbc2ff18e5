#include "loom/core/tensor.h"

#include <fmt/format.h>

#include "loom/core/error.h"

namespace loom {

Shape::Shape(std::initializer_list<int64_t> d) {
  LOOM_CHECK(d.size() >= 1 && d.size() <= size_t(kMaxRank), "[core] tensor rank {} is outside 1..{}", d.size(),
             kMaxRank);
  rank = int(d.size());
  size_t i = 0;
  for (int64_t v : d) {
    LOOM_CHECK(v >= 0, "[core] negative dimension {}", v);
    dims[i++] = v;
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= dims[size_t(i)];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (dims[size_t(i)] != o.dims[size_t(i)]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += fmt::format("{}{}", i ? ", " : "", dims[size_t(i)]);
  return s + "]";
}

std::array<int64_t, kMaxRank> contiguous_strides(DType dtype, const Shape& s) {
  std::array<int64_t, kMaxRank> st{};
  if (s.rank == 0) return st;
  const auto& tr = traits(dtype);
  st[size_t(s.rank - 1)] = tr.is_quantized ? 0 : tr.block_bytes;
  int64_t acc = int64_t(row_bytes(dtype, s[-1]));
  for (int i = s.rank - 2; i >= 0; --i) {
    st[size_t(i)] = acc;
    acc *= s.dims[size_t(i)];
  }
  return st;
}

Tensor::Tensor(std::shared_ptr<Buffer> buffer, size_t offset, DType dtype, Shape shape)
    : buffer_(std::move(buffer)), offset_(offset), dtype_(dtype), shape_(shape) {
  LOOM_CHECK(shape_.rank >= 1, "[core] a tensor needs rank >= 1");
  strides_ = contiguous_strides(dtype_, shape_);
  if (buffer_) {
    LOOM_CHECK(offset_ <= buffer_->size() && nbytes() <= buffer_->size() - offset_,
               "[core] tensor {} at offset {} does not fit a buffer of {} bytes", str(), offset_, buffer_->size());
  }
}

bool Tensor::contiguous() const { return strides_ == contiguous_strides(dtype_, shape_); }

size_t Tensor::nbytes() const {
  LOOM_CHECK(contiguous(), "[core] nbytes of a non-contiguous tensor {}", str());
  size_t rows = 1;
  for (int i = 0; i < rank() - 1; ++i) rows *= size_t(shape_.dims[size_t(i)]);
  return loom::row_bytes(dtype_, shape_[-1]) * rows;
}

std::byte* Tensor::data() const {
  LOOM_CHECK(buffer_ != nullptr, "[core] tensor has no buffer");
  std::byte* p = buffer_->host_data();
  LOOM_CHECK(p != nullptr, "[core] tensor memory is not visible to the host; download it first");
  return p + offset_;
}

Tensor Tensor::reshape(Shape s) const {
  LOOM_CHECK(contiguous(), "[core] reshape of a non-contiguous tensor {}", str());
  LOOM_CHECK(s.numel() == numel(), "[core] cannot reshape {} to {}", str(), s.str());
  LOOM_CHECK(s[-1] % traits(dtype_).block_size == 0, "[core] reshape {} to {} splits a {} block", str(), s.str(),
             name(dtype_));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(dtype_, s);
  return t;
}

Tensor Tensor::slice(int axis, int64_t start, int64_t length) const {
  if (axis < 0) axis += rank();
  LOOM_CHECK(axis >= 0 && axis < rank(), "[core] slice axis {} out of range for {}", axis, str());
  LOOM_CHECK(start >= 0 && length >= 0 && start + length <= shape_[axis], "[core] slice [{}, {}) out of range for {}",
             start, start + length, str());
  Tensor t = *this;
  if (axis == rank() - 1) {
    const int bs = traits(dtype_).block_size;
    LOOM_CHECK(start % bs == 0 && length % bs == 0, "[core] slice of {} splits a {} block", str(), name(dtype_));
    t.offset_ += loom::row_bytes(dtype_, start);
  } else {
    t.offset_ += size_t(start * strides_[size_t(axis)]);
  }
  t.shape_.dims[size_t(axis)] = length;
  return t;
}

Tensor Tensor::with_strides(Shape s, std::array<int64_t, kMaxRank> byte_strides, size_t extra_offset) const {
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = byte_strides;
  t.offset_ += extra_offset;
  return t;
}

std::string Tensor::str() const { return fmt::format("{}{}", name(dtype_), shape_.str()); }

}  // namespace loom
