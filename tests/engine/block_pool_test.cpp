// BlockPool: the KV block allocator. A block is handed out once until every
// reference is dropped; full prompt blocks published under their chained key
// are found again (with a reference taken) until the allocator needs them
// back, least recently released first; and a key only matches when the held
// tokens and parent key are equal, whatever the hash says.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "loom/core/error.h"
#include "loom/engine/block_pool.h"

namespace loom::engine {
namespace {

std::vector<int32_t> block_of(int32_t first, int n = 4) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

TEST(BlockPool, AllocatesEachBlockOnceUntilReleased) {
  BlockPool pool(4, 4, false);
  std::set<int32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(pool.allocate(), -1);  // all held
  EXPECT_EQ(pool.used(), 4);
  pool.release(2);
  EXPECT_EQ(pool.used(), 3);
  EXPECT_EQ(pool.allocate(), 2);
  for (int32_t b : {0, 1, 2, 3}) pool.release(b);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.available(), 4);
  EXPECT_THROW(pool.release(1), Error);  // no reference left to drop
}

TEST(BlockPool, SharedBlocksStayHeldUntilTheLastReference) {
  BlockPool pool(2, 4, true);
  const auto t = block_of(10);
  const uint64_t h = BlockPool::chain_hash(BlockPool::kRootHash, t);
  const int32_t b = pool.allocate();
  ASSERT_TRUE(pool.publish(b, h, BlockPool::kRootHash, t));
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t), b);  // a second sequence shares it
  EXPECT_EQ(pool.refcount(b), 2);
  pool.release(b);
  EXPECT_EQ(pool.used(), 1);
  EXPECT_EQ(pool.cached(), 0);
  pool.release(b);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 1);  // unreferenced, still findable
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t), b);
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_EQ(pool.used(), 1);
}

TEST(BlockPool, ChainedKeysDistinguishEqualBlocksAfterDifferentPrefixes) {
  BlockPool pool(4, 4, true);
  const auto a = block_of(0), b = block_of(100), tail = block_of(7);
  const uint64_t ha = BlockPool::chain_hash(BlockPool::kRootHash, a);
  const uint64_t hb = BlockPool::chain_hash(BlockPool::kRootHash, b);
  const uint64_t hat = BlockPool::chain_hash(ha, tail), hbt = BlockPool::chain_hash(hb, tail);
  EXPECT_NE(hat, hbt);
  const int32_t blk = pool.allocate();
  ASSERT_TRUE(pool.publish(blk, hat, ha, tail));
  EXPECT_EQ(pool.lookup(hbt, hb, tail), -1);  // same tokens, other prefix
  EXPECT_EQ(pool.lookup(hat, ha, tail), blk);
}

TEST(BlockPool, AHashCollisionNeverReturnsOtherTokens) {
  BlockPool pool(2, 4, true);
  const auto t = block_of(1), other = block_of(2);
  const uint64_t h = BlockPool::chain_hash(BlockPool::kRootHash, t);
  const int32_t b = pool.allocate();
  ASSERT_TRUE(pool.publish(b, h, BlockPool::kRootHash, t));
  // Forge a collision: the same key presented with other tokens or another parent.
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, other), -1);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash + 1, t), -1);
  EXPECT_EQ(pool.refcount(b), 1);
  // A second block under a key already taken is not published.
  const int32_t c = pool.allocate();
  EXPECT_FALSE(pool.publish(c, h, BlockPool::kRootHash, other));
  pool.release(c);
  EXPECT_EQ(pool.cached(), 0);  // c was not published: it went back to the free blocks
}

TEST(BlockPool, EvictsTheLeastRecentlyReleasedCachedBlockFirst) {
  BlockPool pool(3, 4, true);
  std::vector<uint64_t> keys;
  std::vector<int32_t> blocks;
  for (int i = 0; i < 3; ++i) {
    const auto t = block_of(10 * i);
    keys.push_back(BlockPool::chain_hash(BlockPool::kRootHash, t));
    blocks.push_back(pool.allocate());
    ASSERT_TRUE(pool.publish(blocks.back(), keys.back(), BlockPool::kRootHash, t));
  }
  // Released in the order 1, 0, 2: block 1 is the least recently used.
  for (int i : {1, 0, 2}) pool.release(blocks[size_t(i)]);
  EXPECT_EQ(pool.available(), 3);
  EXPECT_EQ(pool.allocate(), blocks[1]);
  EXPECT_EQ(pool.evictions(), 1u);
  EXPECT_EQ(pool.lookup(keys[1], BlockPool::kRootHash, block_of(10)), -1);  // gone
  // Touching block 0 (a lookup and a release) makes block 2 the oldest.
  ASSERT_EQ(pool.lookup(keys[0], BlockPool::kRootHash, block_of(0)), blocks[0]);
  pool.release(blocks[0]);
  EXPECT_EQ(pool.allocate(), blocks[2]);
  EXPECT_EQ(pool.allocate(), blocks[0]);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.evictions(), 3u);
}

TEST(BlockPool, FreeBlocksGoBeforeCachedOnes) {
  BlockPool pool(2, 4, true);
  const auto t = block_of(5);
  const uint64_t h = BlockPool::chain_hash(BlockPool::kRootHash, t);
  const int32_t b = pool.allocate();
  ASSERT_TRUE(pool.publish(b, h, BlockPool::kRootHash, t));
  pool.release(b);
  const int32_t fresh = pool.allocate();
  EXPECT_NE(fresh, b);
  EXPECT_EQ(pool.evictions(), 0u);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t), b);
}

TEST(BlockPool, WithThePrefixCacheOffNothingIsPublished) {
  BlockPool pool(2, 4, false);
  const auto t = block_of(5);
  const uint64_t h = BlockPool::chain_hash(BlockPool::kRootHash, t);
  const int32_t b = pool.allocate();
  EXPECT_FALSE(pool.publish(b, h, BlockPool::kRootHash, t));
  pool.release(b);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t), -1);
  EXPECT_EQ(pool.cached(), 0);
}

// A prompt that agrees with only the first tokens of a cached block finds it
// (full or partial) by its prefix key, with how many tokens agree; a partial
// block is never handed out whole by lookup(), and a block held while its
// rows are copied cannot be evicted.
TEST(BlockPool, LongestMatchFindsFullAndPartialBlocksAfterTheSamePrefix) {
  BlockPool pool(3, 4, true);
  const uint64_t root = BlockPool::kRootHash;
  const std::vector<int32_t> full = {1, 2, 3, 4}, partial = {1, 2, 7};
  const int32_t a = pool.allocate(), b = pool.allocate();
  ASSERT_TRUE(pool.publish(a, BlockPool::chain_hash(root, full), root, full));
  ASSERT_TRUE(pool.publish_partial(b, root, partial));
  EXPECT_FALSE(pool.publish_partial(b, root, partial));   // already published
  pool.release(a);
  pool.release(b);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 2);

  int64_t k = -1;
  EXPECT_EQ(pool.longest_match(root, std::vector<int32_t>{1, 2, 3, 9}, k), a);
  EXPECT_EQ(k, 3);
  EXPECT_EQ(pool.longest_match(root, std::vector<int32_t>{1, 2, 7, 7}, k), b);
  EXPECT_EQ(k, 3);  // no more than the partial block holds
  const int32_t either = pool.longest_match(root, std::vector<int32_t>{1, 5}, k);  // both hold {1}
  EXPECT_TRUE(either == a || either == b);
  EXPECT_EQ(k, 1);
  EXPECT_EQ(pool.longest_match(root, std::vector<int32_t>{9, 2}, k), -1);
  EXPECT_EQ(k, 0);
  EXPECT_EQ(pool.longest_match(BlockPool::chain_hash(root, full), full, k), -1);  // another prefix
  const std::vector<int32_t> padded = {1, 2, 7, 0};  // a partial block is never shared whole
  EXPECT_EQ(pool.lookup(BlockPool::chain_hash(root, padded), root, padded), -1);

  // A partial block that adds nothing to what is published is not kept.
  const int32_t c = pool.allocate();
  EXPECT_FALSE(pool.publish_partial(c, root, std::vector<int32_t>{1, 2, 3}));
  pool.release(c);
  EXPECT_EQ(pool.cached(), 2);

  // Retained (while copied from), a cached block is not evicted.
  pool.retain(a);
  EXPECT_EQ(pool.used(), 1);
  std::set<int32_t> got;
  for (int i = 0; i < 2; ++i) got.insert(pool.allocate());  // the free block, then b evicted
  EXPECT_EQ(got.count(a), 0u);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.longest_match(root, partial, k), a);  // b is gone
  EXPECT_EQ(k, 2);
  pool.release(a);
  for (int32_t x : got) pool.release(x);
  EXPECT_EQ(pool.used(), 0);
  EXPECT_EQ(pool.cached(), 1);
  EXPECT_THROW(pool.retain(*got.begin()), Error);  // free: nothing to retain
}

}  // namespace
}  // namespace loom::engine
