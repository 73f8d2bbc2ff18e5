#include "loom/engine/scheduler.h"

#include <algorithm>

#include "loom/core/error.h"

namespace loom::engine {

namespace {

int64_t pow2_at_least(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

}  // namespace

int64_t Scheduler::n_trash_blocks(int64_t max_batch_tokens, int block_size) {
  // A batch of T real tokens is padded to less than twice T, and T <=
  // max_batch_tokens: padding is under half the largest bucket. Each padding
  // token gets its own trash slot, so no two threads of kv_store ever write
  // the same memory.
  const int64_t max_padding = pow2_at_least(max_batch_tokens) / 2;
  return std::max<int64_t>(1, (max_padding + block_size - 1) / block_size);
}

Scheduler::Scheduler(const SchedulerOptions& o)
    : o_(o), pool_(o.n_blocks, o.block_size, o.prefix_cache) {
  LOOM_CHECK(o.max_sequences >= 1, "[engine] max_sequences must be at least 1, got {}", o.max_sequences);
  LOOM_CHECK(o.max_batch_tokens >= o.max_sequences,
             "[engine] max_batch_tokens ({}) must be at least max_sequences ({}): every running sequence decodes one "
             "token per step",
             o.max_batch_tokens, o.max_sequences);
  n_trash_ = n_trash_blocks(o.max_batch_tokens, o.block_size);
  cols_ = o.n_blocks + n_trash_;
  trash_row_ = o.max_sequences;
  batch_.n_seqs = o.max_sequences + 1;
  // Rows of sequences start out pointing at a trash block (any valid id does:
  // attention only reads the entries below each token's position).
  batch_.block_table.assign(size_t(batch_.n_seqs * cols_), int32_t(o.n_blocks));
  for (int64_t j = 0; j < cols_; ++j)
    batch_.block_table[size_t(trash_row_ * cols_ + j)] = int32_t(o.n_blocks + j % n_trash_);
  for (int slot = o.max_sequences - 1; slot >= 0; --slot) free_slots_.push_back(slot);
  const auto cap = size_t(pow2_at_least(o.max_batch_tokens));
  batch_.tokens.reserve(cap);
  batch_.positions.reserve(cap);
  batch_.seq_ids.reserve(cap);
  batch_.out_rows.reserve(size_t(pow2_at_least(o.max_sequences)));
  items_.reserve(size_t(o.max_sequences));
  running_.reserve(size_t(o.max_sequences));
}

void Scheduler::enqueue(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

bool Scheduler::drop_copy(const Sequence& s) {
  for (auto it = copies_.begin(); it != copies_.end(); ++it) {
    if (it->seq != &s) continue;
    pool_.release(it->src);
    copies_.erase(it);
    return true;
  }
  return false;
}

void Scheduler::copies_done() {
  for (const KvCopy& c : copies_) pool_.release(c.src);
  copies_.clear();
}

void Scheduler::release_blocks(Sequence& s) {
  // The computed rows of a partly filled last block stay findable, so a
  // prompt that continues the same text can copy them (not while its own
  // rows are still waiting to be copied in: they are not there yet).
  const int64_t bs = o_.block_size, tail = s.n_computed - s.n_keyed * bs;
  if (!drop_copy(s) && o_.prefix_cache && tail > 0 && tail < bs && s.n_keyed < int64_t(s.blocks.size()))
    pool_.publish_partial(s.blocks[size_t(s.n_keyed)], s.chain,
                          std::span<const int32_t>(s.tokens.data() + s.n_keyed * bs, size_t(tail)));
  // Last block first: the LRU list then evicts a prefix's tail before its
  // head, and a head is what the next request most likely shares.
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) pool_.release(*it);
  s.blocks.clear();
  s.n_computed = 0;
  s.n_keyed = 0;
  s.chain = BlockPool::kRootHash;
}

std::unique_ptr<Sequence> Scheduler::remove(Sequence* seq) {
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->get() != seq) continue;
    std::unique_ptr<Sequence> s = std::move(*it);
    running_.erase(it);
    release_blocks(*s);
    free_slots_.push_back(s->slot);
    s->slot = -1;
    return s;
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->get() != seq) continue;
    std::unique_ptr<Sequence> s = std::move(*it);
    waiting_.erase(it);
    release_blocks(*s);  // normally none: a waiting sequence holds no blocks
    return s;
  }
  fail("[engine] scheduler: sequence {} is not queued", seq->handle->id());
}

void Scheduler::preempt_newest() {
  std::unique_ptr<Sequence> s = std::move(running_.back());
  running_.pop_back();
  release_blocks(*s);  // its full blocks stay cached: the recomputation may find them
  free_slots_.push_back(s->slot);
  s->slot = -1;
  waiting_.push_front(std::move(s));
  ++preemptions_;
}

bool Scheduler::grow(Sequence& s, int64_t n_tokens) {
  const int64_t bs = o_.block_size;
  while (int64_t(s.blocks.size()) * bs < n_tokens) {
    const int32_t b = pool_.allocate();
    if (b < 0) return false;
    batch_.block_table[size_t(s.slot * cols_) + s.blocks.size()] = b;
    s.blocks.push_back(b);
  }
  return true;
}

Scheduler::Admit Scheduler::admit(Sequence& s, int64_t reserve) {
  const int64_t bs = o_.block_size, len = int64_t(s.tokens.size());
  const int64_t blocks_needed = (len + bs - 1) / bs;
  if (blocks_needed > pool_.total()) return Admit::TooLong;
  if (o_.prefix_cache) {
    // Full blocks already computed by someone are shared, up to the first
    // miss. The last token is always computed: its logits are needed.
    const int64_t n_full = (len - 1) / bs;
    uint64_t parent = BlockPool::kRootHash;
    for (int64_t i = 0; i < n_full; ++i) {
      const std::span<const int32_t> t(s.tokens.data() + i * bs, size_t(bs));
      const uint64_t h = BlockPool::chain_hash(parent, t);
      const int32_t b = pool_.lookup(h, parent, t);
      if (b < 0) break;
      s.blocks.push_back(b);
      parent = h;
    }
    s.n_keyed = int64_t(s.blocks.size());
    s.chain = parent;
    s.n_computed = s.n_keyed * bs;
    // Then the longest run of a cached block after the same prefix that
    // agrees with what follows: its rows are copied into a block of our own,
    // which we go on filling.
    const int64_t room = std::min<int64_t>(bs, len - 1 - s.n_computed);
    int64_t k = 0;
    const int32_t src =
        room > 0 ? pool_.longest_match(parent, std::span<const int32_t>(s.tokens.data() + s.n_computed, size_t(room)), k)
                 : -1;
    if (src >= 0) {
      pool_.retain(src);  // until copied: the allocation below must not evict it
      const int32_t dst = pool_.allocate();
      if (dst >= 0) {
        s.blocks.push_back(dst);
        copies_.push_back({src, dst, k, &s});
        s.n_computed += k;
      } else {
        pool_.release(src);
      }
    }
  }
  // Admit only what can be prefilled to the end without taking blocks the
  // running sequences will need for their next tokens.
  if (pool_.available() < blocks_needed - int64_t(s.blocks.size()) + reserve) {
    release_blocks(s);
    return Admit::NoRoom;
  }
  return Admit::Yes;
}

std::span<StepItem> Scheduler::plan(std::vector<std::unique_ptr<Sequence>>& too_long) {
  LOOM_CHECK(copies_.empty(), "[engine] scheduler: plan() before the last plan's KV copies were made");
  items_.clear();
  int64_t budget = o_.max_batch_tokens;
  const uint64_t preemptions_before = preemptions_;
  for (;;) {
    // 1. One decode token for every sequence that has only its last sampled
    //    token to feed, oldest first. Out of blocks: the newest sequence
    //    yields (possibly this one).
    for (size_t i = 0; i < running_.size(); ++i) {
      Sequence& s = *running_[i];
      if (s.pending() != 1) continue;
      bool ok = grow(s, s.n_computed + 1);
      while (!ok) {
        if (running_.size() == 1) {  // alone, and the whole cache is its own
          too_long.push_back(remove(&s));
          break;
        }
        const bool self = running_.back().get() == &s;
        preempt_newest();
        if (self) break;
        ok = grow(s, s.n_computed + 1);
      }
      if (!ok) break;  // s was the last running sequence: nothing follows it
      items_.push_back({&s, s.n_computed, 1});
      --budget;
    }
    // 2. Prompt chunks of sequences still prefilling, in admission order.
    //    While requests wait, one prompt takes at most half of the step, so
    //    a long prompt cannot hold a newcomer back until it is done: the
    //    newcomer is admitted below and gets its first token after a step.
    const int64_t chunk_cap = waiting_.empty() ? o_.max_batch_tokens : std::max<int64_t>(1, o_.max_batch_tokens / 2);
    for (auto& sp : running_) {
      Sequence& s = *sp;
      if (s.pending() <= 1 || budget <= 0) continue;
      int64_t n = std::min({s.pending(), budget, chunk_cap});
      if (!grow(s, s.n_computed + n)) n = int64_t(s.blocks.size()) * o_.block_size - s.n_computed;
      if (n <= 0) continue;
      items_.push_back({&s, s.n_computed, n});
      budget -= n;
    }
    // 3. Admit waiting sequences, first come first served; not in a step
    //    that had to preempt (the blocks are short: admitting now would only
    //    preempt again at the next step).
    const bool short_of_blocks = preemptions_ != preemptions_before && !running_.empty();
    while (!short_of_blocks && !waiting_.empty() && int64_t(running_.size()) < o_.max_sequences && budget > 0) {
      Sequence& s = *waiting_.front();
      const Admit a = admit(s, int64_t(running_.size()));
      if (a == Admit::TooLong) {
        too_long.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        continue;
      }
      if (a == Admit::NoRoom) break;
      // Something to compute (else no logits would ever come): an invariant, checked
      // because breaking it would make plan() spin instead of fail.
      LOOM_CHECK(s.pending() >= 1 && s.pending() <= int64_t(s.tokens.size()),
                 "[engine] scheduler: sequence {} has {} of {} tokens computed", s.handle->id(), s.n_computed,
                 s.tokens.size());
      running_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
      s.slot = free_slots_.back();
      free_slots_.pop_back();
      for (size_t b = 0; b < s.blocks.size(); ++b) batch_.block_table[size_t(s.slot * cols_) + b] = s.blocks[b];
      if (!s.scheduled_once) {
        s.scheduled_once = true;
        s.first_scheduled = Clock::now();
        s.cached_prompt_tokens = s.n_computed;
        prefix_hit_tokens_ += uint64_t(s.n_computed);
        admitted_prompt_tokens_ += uint64_t(s.n_prompt);
      }
      int64_t n = std::min(s.pending(), budget);
      if (!grow(s, s.n_computed + n)) n = int64_t(s.blocks.size()) * o_.block_size - s.n_computed;
      if (n <= 0) continue;
      items_.push_back({&s, s.n_computed, n});
      budget -= n;
    }
    if (!items_.empty() || running_.empty()) break;
    // Nothing can move: the running sequences' partial prompts hold every
    // block. Send the newest back to the queue and try again.
    preempt_newest();
  }
  if (!items_.empty()) fill_batch();
  return items_;
}

void Scheduler::fill_batch() {
  int64_t T = 0;
  for (const StepItem& it : items_) T += it.n;
  const int64_t Tb = std::min(pow2_at_least(T), o_.max_batch_tokens);
  const int64_t Rb = std::min(Tb, pow2_at_least(o_.max_sequences));
  batch_.tokens.resize(size_t(Tb));
  batch_.positions.resize(size_t(Tb));
  batch_.seq_ids.resize(size_t(Tb));
  batch_.out_rows.assign(size_t(Rb), 0);  // padding rows repeat row 0
  size_t t = 0;
  int32_t r = 0;
  for (StepItem& it : items_) {
    const Sequence& s = *it.seq;
    for (int64_t k = 0; k < it.n; ++k, ++t) {
      batch_.tokens[t] = s.tokens[size_t(it.start + k)];
      batch_.positions[t] = int32_t(it.start + k);
      batch_.seq_ids[t] = s.slot;
    }
    if (it.start + it.n == int64_t(s.tokens.size())) {
      it.logits_row = r;
      batch_.out_rows[size_t(r++)] = int32_t(t - 1);
    }
  }
  // Padding: token 0 at positions 0, 1, ... of the trash row, i.e. distinct
  // slots of the trash blocks, which no sequence reads.
  for (int64_t k = 0; t < size_t(Tb); ++k, ++t) {
    batch_.tokens[t] = 0;
    batch_.positions[t] = int32_t(k);
    batch_.seq_ids[t] = trash_row_;
  }
}

void Scheduler::commit() {
  const int64_t bs = o_.block_size;
  for (const StepItem& it : items_) {
    Sequence& s = *it.seq;
    s.n_computed = it.start + it.n;
    if (!o_.prefix_cache) continue;
    while ((s.n_keyed + 1) * bs <= s.n_computed) {
      const std::span<const int32_t> t(s.tokens.data() + s.n_keyed * bs, size_t(bs));
      const uint64_t h = BlockPool::chain_hash(s.chain, t);
      pool_.publish(s.blocks[size_t(s.n_keyed)], h, s.chain, t);  // false if another block has it: fine
      s.chain = h;
      ++s.n_keyed;
    }
  }
}

}  // namespace loom::engine
