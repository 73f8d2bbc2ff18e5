// SentencePiece .model files: a protobuf ModelProto (pieces with scores and
// types, trainer and normalizer settings), read with a small bounds-checked
// wire-format reader. The file is untrusted input: a truncated or corrupt one
// gives a loom::Error naming the file and the field, never a crash.
//
//   auto m = parse_sentencepiece_model(bytes, "tokenizer.model");
//   m.pieces[1].piece == "<s>";  m.model_type == SentencePieceModel::kBpe;
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::tokenizer {

struct SentencePieceModel {
  static constexpr int kUnigram = 1;
  static constexpr int kBpe = 2;

  struct Piece {
    std::string piece;
    float score = 0.0f;
    int type = 1;  // NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6 (as GGUF token types)
  };
  std::vector<Piece> pieces;
  // TrainerSpec (defaults as in sentencepiece_model.proto).
  int model_type = kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;
  // NormalizerSpec.
  std::string normalizer_name;
  size_t charsmap_size = 0;  // precompiled normalization rules; 0 for "identity"
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& source);

// True if `bytes` starts like a ModelProto (its first field is a piece).
bool looks_like_sentencepiece_model(std::string_view bytes);

}  // namespace loom::tokenizer
