// Vocab: the token table every tokenizer algorithm works on (SentencePiece BPE,
// byte-level BPE): pieces, scores and types by id, piece -> id
// lookup, and cutting special-token text out of the input before the
// algorithm sees it. Internal to the tokenizer room.
//
//   Vocab v({.source = path, .pieces = ..., .scores = ..., .types = ...});
//   int32_t id = v.find("\xE2\x96\x81the");   // -1 if absent
//   for (auto f : v.split_special(text, /*parse_special=*/true)) ...
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::tokenizer {

struct VocabData {
  std::string source;              // file name or a description, for error messages
  std::vector<std::string> pieces;
  std::vector<float> scores;       // empty: all 0
  std::vector<TokenType> types;    // one per piece
  // Text that stands for a token in input (parse_special) and in output
  // (decode with special) where it differs from the stored piece; llama2.c
  // vocabularies store BOS as "\n<s>\n".
  std::vector<std::pair<int32_t, std::string>> special_text;
};

class Vocab {
 public:
  explicit Vocab(VocabData data);

  const std::string& source() const { return source_; }
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[checked(id)]; }
  float score(int32_t id) const { return scores_[checked(id)]; }
  TokenType type(int32_t id) const { return types_[checked(id)]; }
  // The text of a control, unknown or user-defined token as users write it.
  const std::string& special_text(int32_t id) const;
  // The id whose piece is exactly `text`, -1 if none. With duplicate pieces
  // the highest id wins, as in llama.cpp.
  int32_t find(std::string_view text) const;
  // Throws a loom::Error for ids outside [0, size()).
  size_t checked(int32_t id) const;

  // A run of input: plain text [offset, offset + length) or one special token.
  struct Fragment {
    size_t offset = 0;
    size_t length = 0;
    int32_t token = -1;  // -1: plain text
  };
  // Cuts special tokens out of `text`: user-defined tokens always (they are
  // part of the vocabulary's text, as in SentencePiece and Hugging Face),
  // control and unknown tokens only with `parse_special`. Scans left to right
  // taking the longest special text that starts at each position.
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::string source_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> index_;
  std::vector<std::pair<int32_t, std::string>> special_text_;  // sorted by id
  // Special tokens by the first byte of their text, longest text first.
  std::array<std::vector<int32_t>, 256> specials_by_first_byte_;
  bool has_user_defined_ = false;
};

}  // namespace loom::tokenizer
