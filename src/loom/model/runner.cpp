#include "loom/model/runner.h"

#include "loom/core/error.h"

namespace loom::model {

struct Runner::Compiled {
  graph::Graph graph;
  ForwardInputs in;
  ForwardOutputs out;
  std::unique_ptr<backend::Executable> exe;
};

Runner::Runner(const Model& model, backend::Backend& backend, const KvCache& kv)
    : model_(model), backend_(backend), kv_(kv) {}

Runner::~Runner() = default;

Runner::Compiled& Runner::compiled_for(int64_t T, int64_t R, int64_t NS) {
  auto key = std::make_tuple(T, R, NS);
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  if (cache_.size() >= 32) {  // many distinct prefill shapes: start over rather than grow
    cache_.clear();
    last_ = nullptr;
  }
  auto c = std::make_unique<Compiled>();
  graph::Graph& g = c->graph;
  c->in.tokens = g.input("tokens", DType::I32, {T});
  c->in.positions = g.input("positions", DType::I32, {T});
  c->in.seq_ids = g.input("seq_ids", DType::I32, {T});
  c->in.slots = g.input("slots", DType::I32, {T});
  c->in.block_table = g.input("block_table", DType::I32, {NS, kv_.n_blocks()});
  c->in.out_rows = g.input("out_rows", DType::I32, {R});
  c->out = model_.forward(g, c->in, kv_);
  g.mark_output(c->out.logits);
  g.mark_output(c->out.hidden);
  c->exe = backend_.compile(g);
  return *cache_.emplace(key, std::move(c)).first->second;
}

std::span<const float> Runner::forward(const Batch& b) {
  const auto T = int64_t(b.tokens.size()), R = int64_t(b.out_rows.size()), NS = int64_t(b.n_seqs);
  const int64_t MB = kv_.n_blocks(), bs = kv_.block_size();
  LOOM_CHECK(T > 0 && R > 0 && NS > 0, "[model] a batch needs tokens, logits rows and sequences");
  LOOM_CHECK(int64_t(b.positions.size()) == T && int64_t(b.seq_ids.size()) == T,
             "[model] batch: positions and seq_ids must have one entry per token");
  LOOM_CHECK(int64_t(b.block_table.size()) == NS * MB, "[model] batch: block table must be {} x {}", NS, MB);
  slots_.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t s = b.seq_ids[size_t(t)], p = b.positions[size_t(t)];
    LOOM_CHECK(s >= 0 && s < NS, "[model] batch: token {} has sequence {} outside [0, {})", t, s, NS);
    LOOM_CHECK(p >= 0 && p < MB * bs, "[model] batch: position {} does not fit the KV cache of {} tokens", p, MB * bs);
    const int32_t block = b.block_table[size_t(s * MB + p / bs)];
    LOOM_CHECK(block >= 0 && block < MB, "[model] batch: block {} outside the cache", block);
    slots_[size_t(t)] = int32_t(block * bs + p % bs);
  }
  for (int32_t r : b.out_rows) LOOM_CHECK(r >= 0 && r < T, "[model] batch: logits row {} outside [0, {})", r, T);

  Compiled& c = compiled_for(T, R, NS);
  c.exe->set_input(c.in.tokens, b.tokens.data(), size_t(T) * 4);
  c.exe->set_input(c.in.positions, b.positions.data(), size_t(T) * 4);
  c.exe->set_input(c.in.seq_ids, b.seq_ids.data(), size_t(T) * 4);
  c.exe->set_input(c.in.slots, slots_.data(), size_t(T) * 4);
  c.exe->set_input(c.in.block_table, b.block_table.data(), b.block_table.size() * 4);
  c.exe->set_input(c.in.out_rows, b.out_rows.data(), size_t(R) * 4);
  c.exe->run();
  logits_.resize(size_t(R * model_.config().n_vocab));
  c.exe->read(c.out.logits, logits_.data(), logits_.size() * 4);
  last_ = &c;
  last_rows_ = R;
  return logits_;
}

std::span<const float> Runner::hidden() {
  LOOM_CHECK(last_ != nullptr, "[model] Runner::hidden: no forward pass has run yet");
  hidden_.resize(size_t(last_rows_ * model_.config().n_embd));
  last_->exe->read(last_->out.hidden, hidden_.data(), hidden_.size() * 4);
  return hidden_;
}

}  // namespace loom::model
