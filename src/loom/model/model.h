// Model: an architecture bound to its weights. Each architecture (one file:
// llama.cpp, ...) reads hyper-parameters from a ModelSource, binds its tensors
// to backend memory, and builds the forward graph of a batch. Model code never
// touches tensor memory; it only builds graphs.
//
//   auto src = ModelSource::open(path);
//   auto m = model::load(*src, *backend);
//   model::KvCache kv(*backend, m->config(), /*blocks=*/64, /*block_size=*/16, DType::F16);
//   model::Runner run(*m, *backend, kv);
//   std::span<const float> logits = run.forward(batch);
//   std::span<const float> hidden = run.hidden();    // final hidden states of the same rows
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/graph/graph.h"
#include "loom/graph/op.h"
#include "loom/model/source.h"

namespace loom::model {

// Dimension legend: V vocab, C embedding, L layers, Hq query heads, Hkv KV
// heads, D head dim, F feed-forward, T tokens in a batch, R rows of logits.
struct ModelConfig {
  std::string arch;
  std::string name;
  int64_t n_vocab = 0;    // V
  int64_t n_embd = 0;     // C
  int64_t n_layer = 0;    // L
  int64_t n_head = 0;     // Hq
  int64_t n_head_kv = 0;  // Hkv
  int64_t head_dim = 0;   // D
  int64_t n_ff = 0;       // F (dense layers)
  int64_t n_expert = 0;       // E experts of a mixture-of-experts layer (0: dense model)
  int64_t n_expert_used = 0;  // experts each token runs through
  int64_t n_ctx_train = 0;
  float norm_eps = 1e-5f;
  graph::Rope rope;
  bool tied_output = false;  // output projection shares the token embedding
};

// Paged KV cache: per layer, K and V of [blocks * block_size, Hkv, D].
class KvCache {
 public:
  KvCache(backend::Backend& be, const ModelConfig& config, int64_t n_blocks, int block_size, DType dtype);
  const Tensor& k(int64_t layer) const { return k_[size_t(layer)]; }
  const Tensor& v(int64_t layer) const { return v_[size_t(layer)]; }
  int64_t n_blocks() const { return n_blocks_; }
  int block_size() const { return block_size_; }
  DType dtype() const { return dtype_; }
  size_t bytes() const;
  // Copies the keys and values of slots [0, n) of block `src` into slots
  // [0, n) of block `dst`, in every layer (through the backend, so any
  // device's cache works). The prefix cache uses it to share part of a block.
  void copy_rows(backend::Backend& be, int64_t src, int64_t dst, int64_t n);

 private:
  std::vector<Tensor> k_, v_;
  int64_t n_blocks_;
  int block_size_;
  DType dtype_;
};

// Graph inputs of one forward pass (all i32).
struct ForwardInputs {
  graph::Value tokens;       // [T]
  graph::Value positions;    // [T]
  graph::Value seq_ids;      // [T]  row of block_table for each token
  graph::Value slots;        // [T]  cache slot each token's K/V is written to
  graph::Value block_table;  // [NS, MB]
  graph::Value out_rows;     // [R]  tokens whose logits are wanted
};

// Graph outputs of one forward pass, for the rows `out_rows` asks for.
struct ForwardOutputs {
  graph::Value logits;  // [R, V]
  graph::Value hidden;  // [R, C] final hidden state: after the output norm, before the output projection
};

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return config_; }
  // Adds the forward pass of a batch to g.
  virtual ForwardOutputs forward(graph::Graph& g, const ForwardInputs& in, const KvCache& kv) const = 0;

 protected:
  ModelConfig config_;
};

// Builds the model for `source` on `backend` (weights stay in the file mapping
// on host backends). Throws naming the file for unknown architectures,
// missing tensors and wrong shapes.
std::unique_ptr<Model> load(const ModelSource& source, backend::Backend& backend);

// Architectures loom knows ("llama", "qwen2", ...).
std::vector<std::string> architectures();

}  // namespace loom::model
