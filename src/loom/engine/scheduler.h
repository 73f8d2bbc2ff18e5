// Scheduler: decides what one engine step computes. It owns the waiting queue,
// the running sequences and the block table, and builds one model::Batch per
// step: a decode token for every running sequence first, then prompt chunks
// (chunked prefill) up to max_batch_tokens, admitting waiting sequences
// (after looking their prompt up in the prefix cache) while slots, budget and
// KV blocks allow. A running sequence that cannot get a block preempts the
// newest one, which returns to the queue to be recomputed.
//
// Prefix cache: full blocks of the prompt found in the cache are shared
// (refcounted). Where the cached prefix ends inside a block, the sequence gets
// a fresh block and the matching rows are copied into it (copy on write): the
// plan lists those copies, which the engine makes before the forward pass.
//
// Batches are padded to a few bucketed shapes so the runner compiles one
// graph per bucket and reuses it: tokens to a power of two (at most
// max_batch_tokens), logits rows to min(tokens, max_sequences rounded up to a
// power of two), and always max_sequences + 1 block-table rows. Padding
// tokens belong to the spare row, whose table points at "trash" blocks that
// no sequence ever reads. Engine thread only.
//
//   Scheduler s(options, pool_blocks);
//   s.enqueue(std::move(seq));
//   auto items = s.plan(dropped);             // what this step computes
//   for (auto c : s.copies()) ...;  s.copies_done();   // KV rows to copy first
//   runner.forward(s.batch());  s.commit();   // then sample the items with a logits row
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "loom/engine/block_pool.h"
#include "loom/engine/sequence.h"
#include "loom/model/runner.h"

namespace loom::engine {

struct SchedulerOptions {
  int max_sequences = 4;
  int64_t max_batch_tokens = 512;
  int block_size = 16;
  int64_t n_blocks = 0;  // usable KV blocks (the cache holds n_trash_blocks() more)
  bool prefix_cache = true;
};

struct StepItem {
  Sequence* seq = nullptr;
  int64_t start = 0;        // first position computed
  int64_t n = 0;            // tokens computed
  int32_t logits_row = -1;  // row of the step's logits, when the chunk reaches the sequence's last token
};

// Rows [0, n) of block `src` are to be copied into rows [0, n) of block `dst`
// (every layer, K and V) before the step's forward pass.
struct KvCopy {
  int32_t src = -1, dst = -1;
  int64_t n = 0;
  Sequence* seq = nullptr;  // the sequence dst belongs to
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerOptions& options);

  // Trash blocks the KV cache needs after the usable ones, for padding.
  static int64_t n_trash_blocks(int64_t max_batch_tokens, int block_size);

  void enqueue(std::unique_ptr<Sequence> seq);  // at the back of the queue
  // Takes a sequence out (running or waiting), releasing its blocks.
  std::unique_ptr<Sequence> remove(Sequence* seq);
  template <typename F>
  std::vector<Sequence*> find_if(F pred) const {
    std::vector<Sequence*> out;
    for (const auto& s : running_) if (pred(*s)) out.push_back(s.get());
    for (const auto& s : waiting_) if (pred(*s)) out.push_back(s.get());
    return out;
  }

  // Plans the next step and fills batch(). Sequences the KV cache can never
  // hold (longer than all of it) are moved out into `too_long`.
  std::span<StepItem> plan(std::vector<std::unique_ptr<Sequence>>& too_long);
  const model::Batch& batch() const { return batch_; }
  // The copies the last plan() asks for; copies_done() once they are made
  // (it lets go of the source blocks, which plan() kept from eviction).
  std::span<const KvCopy> copies() const { return copies_; }
  void copies_done();
  // After the step's forward pass ran: its tokens are computed; full blocks
  // become findable in the prefix cache.
  void commit();

  int64_t running() const { return int64_t(running_.size()); }
  int64_t waiting() const { return int64_t(waiting_.size()); }
  const BlockPool& pool() const { return pool_; }
  uint64_t preemptions() const { return preemptions_; }
  uint64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  uint64_t admitted_prompt_tokens() const { return admitted_prompt_tokens_; }

 private:
  bool grow(Sequence& s, int64_t n_tokens);  // blocks for positions [0, n_tokens)
  void release_blocks(Sequence& s);
  bool drop_copy(const Sequence& s);  // cancels s's pending copy, if any
  void preempt_newest();
  // Moves the head of the queue into the running set if it fits.
  enum class Admit { Yes, NoRoom, TooLong };
  Admit admit(Sequence& s, int64_t reserve);
  void fill_batch();

  SchedulerOptions o_;
  BlockPool pool_;
  int64_t n_trash_, cols_;
  int32_t trash_row_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order: the back is preempted first
  std::vector<int> free_slots_;
  std::vector<StepItem> items_;
  std::vector<KvCopy> copies_;
  model::Batch batch_;  // block_table lives here, updated in place
  uint64_t preemptions_ = 0, prefix_hit_tokens_ = 0, admitted_prompt_tokens_ = 0;
};

}  // namespace loom::engine
