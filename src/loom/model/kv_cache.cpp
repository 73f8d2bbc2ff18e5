#include "loom/core/error.h"
#include "loom/model/model.h"

namespace loom::model {

KvCache::KvCache(backend::Backend& be, const ModelConfig& c, int64_t n_blocks, int block_size, DType dtype)
    : n_blocks_(n_blocks), block_size_(block_size), dtype_(dtype) {
  LOOM_CHECK(n_blocks > 0 && block_size > 0, "[model] KV cache needs blocks > 0 and block size > 0");
  LOOM_CHECK(dtype == DType::F32 || dtype == DType::F16, "[model] KV cache type must be f32 or f16, got {}",
             name(dtype));
  const Shape shape{n_blocks * block_size, c.n_head_kv, c.head_dim};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (auto* list : {&k_, &v_}) {
      Tensor t(be.allocate(row_bytes(dtype, c.head_dim) * size_t(shape[0] * shape[1])), 0, dtype, shape);
      // Zeroed so that reading a slot before it is written is deterministic.
      std::vector<std::byte> zeros(t.nbytes());
      be.upload(t, zeros.data(), zeros.size());
      list->push_back(std::move(t));
    }
  }
}

void KvCache::copy_rows(backend::Backend& be, int64_t src, int64_t dst, int64_t n) {
  LOOM_CHECK(src >= 0 && src < n_blocks_ && dst >= 0 && dst < n_blocks_ && n >= 0 && n <= block_size_,
             "[model] KV cache: cannot copy {} rows from block {} to block {} of {} blocks of {}", n, src, dst,
             n_blocks_, block_size_);
  if (n == 0 || src == dst) return;
  std::vector<std::byte> staging;
  for (const auto* list : {&k_, &v_}) {
    for (const Tensor& t : *list) {
      const Tensor from = t.slice(0, src * block_size_, n), to = t.slice(0, dst * block_size_, n);
      staging.resize(from.nbytes());
      be.download(from, staging.data(), staging.size());
      be.upload(to, staging.data(), staging.size());
    }
  }
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& t : k_) n += t.nbytes();
  for (const auto& t : v_) n += t.nbytes();
  return n;
}

}  // namespace loom::model
