// SentencePiece BPE with scores and byte fallback, as used by Llama 2,
// TinyLlama, Phi-3 and llama2.c: text is split into characters, then the
// adjacent pair whose concatenation is the highest-scoring vocabulary piece is
// merged until no pair is a piece; characters left without a piece become
// <0xXX> byte tokens. Internal to the tokenizer room; build one through
// from_gguf() or from_llama2c().
#pragma once

#include <array>
#include <string>
#include <vector>

#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {

struct SpmOptions {
  // What stands for a space inside pieces: U+2581 "▁" in SentencePiece and
  // GGUF files, a plain space in llama2.c files (its exporter replaced it).
  std::string space_marker = "\xE2\x96\x81";
  bool add_space_prefix = true;  // SentencePiece's "dummy prefix"
  // llama2.c turns a character missing from the vocabulary into byte tokens
  // before merging, so it never merges with a neighbour; llama.cpp keeps it as
  // text during merging and falls back to bytes at the end.
  bool bytes_before_merge = false;
  // SentencePiece's own rules rather than llama.cpp's (for .model files):
  // the dummy prefix goes only at the start of the text and after control
  // tokens, not after user-defined ones (they are pieces inside the text);
  // only normal, user-defined and unused pieces are merge results; and each
  // byte of ill-formed UTF-8 becomes U+FFFD, as its normalizer does.
  bool sentencepiece = false;
  // SentencePiece's normalizer option (with `sentencepiece`): drop leading
  // and trailing spaces and collapse runs of spaces to one.
  bool remove_extra_whitespaces = false;
  bool add_bos = true;   // the model's default for EncodeOptions::add_bos
  bool add_eos = false;  // ... and add_eos
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  std::vector<int32_t> bos_tokens;  // what add_bos prepends; empty: {bos}
  std::vector<int32_t> eog;  // end-of-generation ids
};

class SpmTokenizer final : public Tokenizer {
 public:
  SpmTokenizer(Vocab vocab, SpmOptions options);

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string token_bytes(int32_t id, bool special = false) const override;
  bool adds_space_prefix() const override { return options_.add_space_prefix; }
  int32_t vocab_size() const override { return vocab_.size(); }
  const std::string& piece(int32_t id) const override { return vocab_.piece(id); }
  TokenType type(int32_t id) const override { return vocab_.type(id); }

 private:
  // BPE over one run of plain text whose spaces are already markers.
  void encode_run(std::string_view text, std::vector<int32_t>& out) const;
  // The id of a piece merging may produce, -1 if none.
  int32_t find_piece(std::string_view piece) const;
  // Byte fallback for a piece of text that is no token.
  void append_bytes(std::string_view text, std::vector<int32_t>& out) const;

  Vocab vocab_;
  SpmOptions options_;
  int32_t unk_ = -1;
  std::array<int32_t, 256> byte_tokens_;  // -1 where the vocabulary has no token for the byte
  std::vector<std::string> text_;         // token_bytes(id, /*special=*/true), precomputed
};

}  // namespace loom::tokenizer
