// BlockPool: the block allocator of the paged KV cache, with the prefix cache
// built into it. Blocks are refcounted: a sequence holds one reference on
// each block of its table, and sequences that share a cached prompt prefix
// hold the same blocks. A full block whose keys/values are computed can be
// published under a chained hash of the tokens it holds (and of everything
// before it); when its last reference goes, it stays cached (evictable, LRU)
// until a new block is needed. A sequence's last, partly filled block can be
// published too (publish_partial) when the sequence lets it go: it is never
// shared, but a later prompt that agrees with the first tokens of any
// published block (longest_match) copies their keys/values into a block of
// its own instead of computing them. Engine thread only.
//
//   engine::BlockPool pool(/*blocks=*/64, /*block_size=*/16, /*prefix_cache=*/true);
//   uint64_t h = BlockPool::chain_hash(BlockPool::kRootHash, first16);
//   int32_t b = pool.lookup(h, BlockPool::kRootHash, first16);   // -1: not cached
//   if (b < 0) { b = pool.allocate(); /* compute */ pool.publish(b, h, BlockPool::kRootHash, first16); }
//   pool.release(b);   // cached, evictable
//   int64_t k = 0;
//   int32_t src = pool.longest_match(h, next16, k);  // -1 or a block whose first k tokens agree
//   pool.retain(src);  /* copy its first k rows into a block of our own */  pool.release(src);
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace loom::engine {

class BlockPool {
 public:
  static constexpr uint64_t kRootHash = 0x6c6f6f6d2d6b7631ULL;  // the "parent" of a sequence's first block

  BlockPool(int64_t n_blocks, int block_size, bool prefix_cache);

  // The key of a full block: its tokens and the key of the block before it,
  // so equal keys mean equal prefixes, not just equal blocks.
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);

  // A block with one reference, taken from the free blocks or else by
  // evicting the least recently used cached block; -1 if every block is held.
  int32_t allocate();
  // Drops one reference; at zero a published block becomes cached
  // (evictable, most recently used), any other block free.
  void release(int32_t block);
  // A published block holding exactly `tokens` after the prefix `parent`,
  // with one more reference taken; -1 if none.
  int32_t lookup(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
  // Makes a full, computed block findable by lookup(). Returns false (and
  // changes nothing) when another block already holds that key or the
  // prefix cache is off.
  bool publish(int32_t block, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
  // Makes the first tokens.size() (< block_size) rows of a computed block
  // findable by longest_match(), never by lookup(). Returns false (and
  // changes nothing) when a published block after `parent` already starts
  // with `tokens`, or the prefix cache is off.
  bool publish_partial(int32_t block, uint64_t parent, std::span<const int32_t> tokens);
  // The published block after the prefix `parent` (full or partial) whose
  // leading tokens agree longest with `tokens`; `matched` gets that length.
  // -1 (and matched 0) if none agrees on a first token. Takes no reference.
  int32_t longest_match(uint64_t parent, std::span<const int32_t> tokens, int64_t& matched) const;
  // One more reference on a block that is held or cached (e.g. to keep it
  // from being evicted while its rows are copied).
  void retain(int32_t block);

  int64_t total() const { return n_blocks_; }
  int64_t used() const { return used_; }             // blocks with references
  int64_t cached() const { return n_cached_; }       // unreferenced but holding a published prefix
  int64_t available() const { return n_blocks_ - used_; }  // free + cached: what allocate() can hand out
  int refcount(int32_t block) const { return refs_[size_t(block)]; }
  int block_size() const { return block_size_; }
  uint64_t evictions() const { return evictions_; }

 private:
  void lru_push_back(int32_t b);
  void lru_remove(int32_t b);
  void unpublish(int32_t b);
  void add_child(int32_t b, uint64_t parent, std::span<const int32_t> tokens);

  int64_t n_blocks_;
  int block_size_;
  bool prefix_cache_;
  std::vector<int> refs_;
  std::vector<int32_t> free_;  // stack of free, unpublished blocks
  // Published blocks: key, parent key and tokens (compared on lookup, so a
  // hash collision can never hand out the wrong keys/values).
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::vector<uint64_t> hash_, parent_;
  std::vector<char> published_;
  std::vector<int32_t> tokens_;  // [n_blocks * block_size]
  std::vector<int32_t> filled_;  // tokens a published block holds (block_size unless partial)
  // Published blocks by the key of the prefix before them, for longest_match().
  std::unordered_multimap<uint64_t, int32_t> children_;
  // Intrusive doubly-linked LRU list of cached (published, unreferenced)
  // blocks: head is evicted first. No allocation after construction.
  std::vector<int32_t> prev_, next_;
  int32_t head_ = -1, tail_ = -1;
  int64_t used_ = 0, n_cached_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace loom::engine
