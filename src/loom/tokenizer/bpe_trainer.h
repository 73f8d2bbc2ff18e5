// Training a byte-level BPE tokenizer on a corpus (`loom tokenizer train`):
// the text is cut into words by a family's pre-tokenizer, every word starts
// as its bytes (ids 0..255), and the most frequent adjacent pair of symbols
// over the corpus is merged into a new token, again and again, until the
// vocabulary has the requested size. Ties between equally frequent pairs go
// to the pair with the smaller left id, then the smaller right id, so
// training is deterministic. Special tokens take the last ids.
//
//   BpeTrainer t({.vocab_size = 4096});
//   t.add_text(corpus);                       // as often as needed
//   BpeTrainResult r = t.train();
//   write_hf_tokenizer(r, "out_dir");         // tokenizer.json + tokenizer_config.json, read by load()
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/tokenizer/pre_tokenizer.h"

namespace loom::tokenizer {

struct BpeTrainOptions {
  int32_t vocab_size = 4096;  // bytes + merges + special tokens
  std::string pre = "gpt-2";  // pre-tokenizer, by its GGUF tokenizer.ggml.pre name
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  int64_t min_frequency = 2;  // pairs seen fewer times are never merged
};

struct BpeTrainResult {
  std::vector<std::string> tokens;                          // bytes of each id (special tokens: their text)
  std::vector<std::pair<std::string, std::string>> merges;  // in priority order (the order learnt)
  std::vector<int32_t> special_ids;
  std::string pre;  // the pre-tokenizer name
  PreTokenizerSpec pre_spec;
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainOptions options);
  ~BpeTrainer();
  // Counts the words of `text` (text from several calls never forms a word together).
  void add_text(std::string_view text);
  BpeTrainResult train() const;

 private:
  BpeTrainOptions o_;
  PreTokenizerSpec spec_;
  PreTokenizer pre_;
  std::unordered_map<std::string, int64_t> words_;
};

// Writes tokenizer.json (model BPE in byte-level spelling, the pre-tokenizer
// as Split + ByteLevel, the special tokens as added tokens) and
// tokenizer_config.json (the first special token as EOS, no BOS) into `dir`.
void write_hf_tokenizer(const BpeTrainResult& result, const std::string& dir);

}  // namespace loom::tokenizer
