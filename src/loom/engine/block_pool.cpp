#include "loom/engine/block_pool.h"

#include <algorithm>

#include "loom/core/error.h"

namespace loom::engine {

namespace {

// The finaliser of SplitMix64: a bijection that spreads every input bit over
// the whole word, so chaining it over the tokens gives a well-mixed key.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

BlockPool::BlockPool(int64_t n_blocks, int block_size, bool prefix_cache)
    : n_blocks_(n_blocks), block_size_(block_size), prefix_cache_(prefix_cache) {
  LOOM_CHECK(n_blocks > 0 && n_blocks < (int64_t(1) << 31) && block_size > 0,
             "[engine] block pool: {} blocks of {} tokens is not a valid KV cache", n_blocks, block_size);
  const auto n = size_t(n_blocks);
  refs_.assign(n, 0);
  free_.resize(n);
  // Lowest ids on top of the stack: the first sequences get blocks 0, 1, 2...
  for (size_t i = 0; i < n; ++i) free_[i] = int32_t(n - 1 - i);
  hash_.assign(n, 0);
  parent_.assign(n, 0);
  published_.assign(n, 0);
  if (prefix_cache) {
    tokens_.assign(n * size_t(block_size), 0);
    filled_.assign(n, 0);
    by_hash_.reserve(n);
    children_.reserve(n);
  }
  prev_.assign(n, -1);
  next_.assign(n, -1);
}

uint64_t BlockPool::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) h = mix(h + 0x9e3779b97f4a7c15ULL + uint64_t(uint32_t(t)));
  return h;
}

void BlockPool::lru_push_back(int32_t b) {
  prev_[size_t(b)] = tail_;
  next_[size_t(b)] = -1;
  if (tail_ >= 0) next_[size_t(tail_)] = b;
  else head_ = b;
  tail_ = b;
  ++n_cached_;
}

void BlockPool::lru_remove(int32_t b) {
  const int32_t p = prev_[size_t(b)], n = next_[size_t(b)];
  if (p >= 0) next_[size_t(p)] = n;
  else head_ = n;
  if (n >= 0) prev_[size_t(n)] = p;
  else tail_ = p;
  prev_[size_t(b)] = next_[size_t(b)] = -1;
  --n_cached_;
}

void BlockPool::unpublish(int32_t b) {
  if (filled_[size_t(b)] == block_size_) by_hash_.erase(hash_[size_t(b)]);
  auto [first, last] = children_.equal_range(parent_[size_t(b)]);
  for (auto it = first; it != last; ++it) {
    if (it->second == b) {
      children_.erase(it);
      break;
    }
  }
  published_[size_t(b)] = 0;
}

void BlockPool::add_child(int32_t b, uint64_t parent, std::span<const int32_t> tokens) {
  published_[size_t(b)] = 1;
  parent_[size_t(b)] = parent;
  filled_[size_t(b)] = int32_t(tokens.size());
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + ptrdiff_t(size_t(b) * size_t(block_size_)));
  children_.emplace(parent, b);
}

int32_t BlockPool::allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (head_ >= 0) {
    b = head_;  // the least recently used cached prefix block
    lru_remove(b);
    unpublish(b);
    ++evictions_;
  } else {
    return -1;
  }
  refs_[size_t(b)] = 1;
  ++used_;
  return b;
}

void BlockPool::release(int32_t b) {
  LOOM_CHECK(b >= 0 && b < n_blocks_ && refs_[size_t(b)] > 0, "[engine] block pool: release of block {} not held",
             b);
  if (--refs_[size_t(b)] > 0) return;
  --used_;
  if (published_[size_t(b)]) lru_push_back(b);
  else free_.push_back(b);
}

int32_t BlockPool::lookup(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  if (!prefix_cache_ || int64_t(tokens.size()) != block_size_) return -1;
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  const int32_t b = it->second;
  const int32_t* held = tokens_.data() + size_t(b) * size_t(block_size_);
  if (parent_[size_t(b)] != parent || !std::equal(tokens.begin(), tokens.end(), held)) return -1;
  retain(b);
  return b;
}

bool BlockPool::publish(int32_t b, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  LOOM_CHECK(b >= 0 && b < n_blocks_ && refs_[size_t(b)] > 0, "[engine] block pool: publish of block {} not held",
             b);
  if (!prefix_cache_ || published_[size_t(b)] || int64_t(tokens.size()) != block_size_) return false;
  if (!by_hash_.emplace(hash, b).second) return false;
  hash_[size_t(b)] = hash;
  add_child(b, parent, tokens);
  return true;
}

bool BlockPool::publish_partial(int32_t b, uint64_t parent, std::span<const int32_t> tokens) {
  LOOM_CHECK(b >= 0 && b < n_blocks_ && refs_[size_t(b)] > 0,
             "[engine] block pool: publish_partial of block {} not held", b);
  if (!prefix_cache_ || published_[size_t(b)] || tokens.empty() || int64_t(tokens.size()) >= block_size_)
    return false;
  int64_t matched = 0;
  if (longest_match(parent, tokens, matched) >= 0 && matched == int64_t(tokens.size())) return false;  // nothing new
  add_child(b, parent, tokens);
  return true;
}

int32_t BlockPool::longest_match(uint64_t parent, std::span<const int32_t> tokens, int64_t& matched) const {
  matched = 0;
  if (!prefix_cache_) return -1;
  int32_t best = -1;
  auto [first, last] = children_.equal_range(parent);
  for (auto it = first; it != last; ++it) {
    const int32_t b = it->second;
    const int32_t* held = tokens_.data() + size_t(b) * size_t(block_size_);
    const int64_t n = std::min<int64_t>(filled_[size_t(b)], int64_t(tokens.size()));
    int64_t k = 0;
    while (k < n && held[k] == tokens[size_t(k)]) ++k;
    if (k > matched) {
      matched = k;
      best = b;
    }
  }
  return best;
}

void BlockPool::retain(int32_t b) {
  LOOM_CHECK(b >= 0 && b < n_blocks_ && (refs_[size_t(b)] > 0 || published_[size_t(b)]),
             "[engine] block pool: retain of block {}, which is free", b);
  if (refs_[size_t(b)]++ == 0) {
    lru_remove(b);
    ++used_;
  }
}

}  // namespace loom::engine
