// llama2.c checkpoint and tokenizer files (Karpathy's llama2.c "legacy"
// format): a header of 7 int32, then fp32 arrays; the tokenizer is an int32
// max_token_length followed by (float score, int32 length, bytes) per token.
// Both are untrusted input and fully bounds-checked. The checkpoint's arrays
// stay in the memory mapping.
//
//   auto ck = read_llama2c_checkpoint("stories260K.bin");
//   const float* wq = ck.wq.data;   // [L, D, D]
//   auto vocab = read_llama2c_vocab("tok512.bin", ck.config.vocab_size);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/core/tensor.h"
#include "loom/format/mapped_file.h"

namespace loom::format {

struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here; the sign in the file is `shared_classifier`
  int32_t seq_len = 0;
  bool shared_classifier = true;  // output classifier tied to the token embedding
};

struct Llama2cArray {
  const float* data = nullptr;  // inside the mapping (4-byte aligned)
  Shape shape;                  // outermost first
};

struct Llama2cCheckpoint {
  Llama2cConfig config;
  std::shared_ptr<const MappedFile> file;
  Llama2cArray token_embedding;  // [V, D]
  Llama2cArray rms_att;          // [L, D]
  Llama2cArray wq;               // [L, D, D]
  Llama2cArray wk;               // [L, KVD, D]   KVD = n_kv_heads * D / n_heads
  Llama2cArray wv;               // [L, KVD, D]
  Llama2cArray wo;               // [L, D, D]
  Llama2cArray rms_ffn;          // [L, D]
  Llama2cArray w1;               // [L, H, D]     gate
  Llama2cArray w2;               // [L, D, H]     down
  Llama2cArray w3;               // [L, H, D]     up
  Llama2cArray rms_final;        // [D]
  Llama2cArray wcls;             // [V, D] (same memory as token_embedding when shared)
};

Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path);
Llama2cCheckpoint parse_llama2c_checkpoint(std::shared_ptr<const MappedFile> file);
// True if the file's size matches what its 28-byte header describes.
bool looks_like_llama2c(const MappedFile& file);

struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;  // as stored: spaces are ' ', bytes are "<0xAB>"
  std::vector<float> scores;
};

// Reads exactly `vocab_size` entries.
Llama2cVocab read_llama2c_vocab(const std::string& path, int32_t vocab_size);
Llama2cVocab parse_llama2c_vocab(const MappedFile& file, int32_t vocab_size);

}  // namespace loom::format
