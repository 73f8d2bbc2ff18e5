// Runner: runs a model's forward pass for host-described batches on one
// backend. Graphs are compiled once per batch shape (tokens, logits rows,
// sequences) and reused, so steady-state decoding allocates nothing.
//
//   model::Batch b;  b.tokens = {1};  b.positions = {0};  b.seq_ids = {0};
//   b.out_rows = {0};  b.block_table = {0, 1, 2, ...};   // one row per sequence
//   std::span<const float> logits = runner.forward(b);    // [R, V]
//   std::span<const float> hidden = runner.hidden();      // [R, C], for tests and embeddings
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "loom/model/model.h"

namespace loom::model {

struct Batch {
  std::vector<int32_t> tokens;     // [T]
  std::vector<int32_t> positions;  // [T]
  std::vector<int32_t> seq_ids;    // [T] index into the block table's rows
  std::vector<int32_t> out_rows;   // [R] which tokens' logits to return
  int32_t n_seqs = 1;
  std::vector<int32_t> block_table;  // [n_seqs * kv.n_blocks()]: block ids of each sequence, in order
};

class Runner {
 public:
  Runner(const Model& model, backend::Backend& backend, const KvCache& kv);
  ~Runner();

  // Logits [R, V] of the batch, valid until the next call.
  std::span<const float> forward(const Batch& batch);
  // Final hidden states [R, C] (after the output norm) of the last forward,
  // read on demand; valid until the next call of forward or hidden.
  std::span<const float> hidden();

  const Model& model() const { return model_; }

 private:
  struct Compiled;
  Compiled& compiled_for(int64_t T, int64_t R, int64_t NS);

  const Model& model_;
  backend::Backend& backend_;
  const KvCache& kv_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Compiled>> cache_;
  Compiled* last_ = nullptr;  // the executable of the last forward
  int64_t last_rows_ = 0;
  std::vector<int32_t> slots_;
  std::vector<float> logits_;
  std::vector<float> hidden_;
};

}  // namespace loom::model
