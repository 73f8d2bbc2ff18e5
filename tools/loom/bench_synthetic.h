// Random-weight models of well-known shapes for `loom bench --synthetic`,
// written once as GGUF (with a placeholder SentencePiece vocabulary, so peer
// engines such as llama.cpp load the very same file) and reused.
#pragma once

#include <string>
#include <vector>

#include "loom/core/dtype.h"

namespace loom::cli {

struct SyntheticShape {
  const char* name;
  const char* arch;
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
  float rope_base;
  bool tied_output;
  bool qkv_bias;
};

const std::vector<SyntheticShape>& synthetic_shapes();
// Path of the GGUF for (shape, type), written first if missing.
std::string synthetic_model(const std::string& shape, DType type);

}  // namespace loom::cli
