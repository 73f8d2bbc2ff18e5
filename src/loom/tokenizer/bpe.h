// Byte-level BPE, as used by GPT-2, Llama 3, Qwen2, DeepSeek and GLM-4: the
// text is cut into words by the family's pre-tokenizer, each word is taken as
// bytes, and adjacent symbols are merged by merge priority (merges.txt order,
// or tiktoken rank) until no pair merges. Every byte has a token, so any input
// (even ill-formed UTF-8) encodes, and decoding gives the bytes back.
// Internal to the tokenizer room; build one through load() or from_gguf().
//
//   BpeTokenizer tok(std::move(vocab), std::move(bytes), BpeMerges::from_pairs(pairs), options);
//   auto ids = tok.encode(" world");
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/tokenizer/pre_tokenizer.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {

// Where merge priorities come from.
struct BpeMerges {
  // Pairs of byte strings, highest priority first (merges.txt, GGUF
  // tokenizer.ggml.merges, tokenizer.json "merges"). A pair whose parts or
  // result are not tokens is ignored.
  std::vector<std::pair<std::string, std::string>> pairs;
  // tiktoken: no merge list; two adjacent symbols merge if their bytes
  // together are a token, the lowest id (= rank) first.
  bool from_ranks = false;
};

struct BpeOptions {
  PreTokenizerSpec pre;
  bool add_bos = false;  // the model's default for EncodeOptions::add_bos
  bool add_eos = false;
  int32_t bos = -1;
  int32_t eos = -1;
  std::vector<int32_t> bos_tokens;  // what add_bos prepends; empty: {bos}
  std::vector<int32_t> eog;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // `bytes[id]` is what a normal token stands for (its entry in `vocab`
  // decoded from the byte-level spelling, or the raw tiktoken bytes); it is
  // ignored for control, user-defined and unused tokens, whose text is their
  // piece. All 256 single bytes must be tokens.
  BpeTokenizer(Vocab vocab, std::vector<std::string> bytes, const BpeMerges& merges, BpeOptions options);

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string token_bytes(int32_t id, bool special = false) const override;
  bool adds_space_prefix() const override { return false; }
  int32_t vocab_size() const override { return vocab_.size(); }
  const std::string& piece(int32_t id) const override { return vocab_.piece(id); }
  TokenType type(int32_t id) const override { return vocab_.type(id); }

  // What writing this tokenizer out (GGUF) needs: the merges that apply, best
  // first, as byte-level "left right" lines (empty for tiktoken's rank
  // merging), and the options it was built with.
  std::vector<std::string> merge_lines() const;
  bool merges_from_ranks() const { return from_ranks_; }
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  struct Workspace;
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  int32_t find_bytes(std::string_view bytes) const;
  void encode_word(std::string_view word, Workspace& ws, std::vector<int32_t>& out) const;

  Vocab vocab_;
  BpeOptions options_;
  PreTokenizer pre_;
  std::vector<std::string> bytes_;  // token_bytes(id, /*special=*/true), precomputed
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> by_bytes_;  // normal tokens only
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge; empty with from_ranks_
  bool from_ranks_ = false;
  std::array<int32_t, 256> byte_token_{};
};

}  // namespace loom::tokenizer
