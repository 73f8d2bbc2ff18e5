// Tokenizer: text <-> token ids, exactly as each model family's own tokenizer
// does it. One interface; algorithms (SentencePiece BPE, byte-level BPE, ...)
// are implementations built from a GGUF vocabulary, a llama2.c vocabulary, or
// tokenizer files.
//
//   auto tok = tokenizer::load("tokenizers/llama3");       // file or folder; or from_gguf(metadata)
//   std::vector<int32_t> ids = tok->encode("Hello", {.add_bos = true});
//   std::string text = tok->decode(ids);
//   tokenizer::StreamDecoder out(*tok);   // for printing token by token
//   std::cout << out.push(id);            // never half a UTF-8 character
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::format {
class Metadata;
struct Llama2cVocab;
}  // namespace loom::format

namespace loom::tokenizer {

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct EncodeOptions {
  bool add_bos = false;        // prepend BOS (or the family's prompt prefix, see bos_tokens()) if there is one
  bool add_eos = false;        // append EOS if the vocabulary has one
  bool parse_special = false;  // recognise control/user-defined token text (e.g. "<s>") in the input
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;

  // The bytes token `id` adds to the text: pieces with their word-boundary
  // markers turned back into spaces, byte tokens as their byte, control
  // tokens as "" (their text with `special`). Throws for ids out of range.
  virtual std::string token_bytes(int32_t id, bool special = false) const = 0;

  // Whole-sequence decoding (the exact inverse of encode for normal text):
  // concatenated token bytes, minus the leading space the encoder added.
  std::string decode(std::span<const int32_t> ids, bool special = false) const;

  // True if encode() adds a leading space (SentencePiece "dummy prefix"),
  // which decode() removes again from the first piece.
  virtual bool adds_space_prefix() const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual const std::string& piece(int32_t id) const = 0;  // vocabulary entry as stored
  virtual TokenType type(int32_t id) const = 0;
  int32_t bos() const { return bos_; }  // -1 if none
  // What EncodeOptions::add_bos puts before the text: {BOS} for most
  // families, ChatGLM3's and GLM-4's [gMASK] sop prefix, empty if none.
  const std::vector<int32_t>& bos_tokens() const { return bos_tokens_; }
  int32_t eos() const { return eos_; }  // -1 if none
  // End-of-generation tokens (EOS, EOT, <|im_end|>, ...).
  bool is_eog(int32_t id) const;
  // What the model's tokenizer configuration asks for around a prompt
  // (tokenizer.ggml.add_bos_token / add_eos_token): callers pass these as
  // EncodeOptions::add_bos / add_eos.
  bool default_add_bos() const { return default_add_bos_; }
  bool default_add_eos() const { return default_add_eos_; }

 protected:
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  std::vector<int32_t> bos_tokens_;
  std::vector<int32_t> eog_;
  bool default_add_bos_ = false;
  bool default_add_eos_ = false;
};

// From tokenizer.ggml.* metadata: a GGUF file's (model or vocab-only), or
// metadata derived from other tokenizer files under the same keys.
std::unique_ptr<Tokenizer> from_gguf(const format::Metadata& metadata);
// From a llama2.c tokenizer file's contents (ids 0,1,2 are <unk>, <s>, </s>).
std::unique_ptr<Tokenizer> from_llama2c(const format::Llama2cVocab& vocab);

// Any tokenizer loom reads, from a file or a folder, recognised by content:
//  - a GGUF file (model or vocab-only): its tokenizer.ggml.* metadata;
//  - a SentencePiece .model (protobuf): Llama 2, ChatGLM3, TeleChat2, ...;
//  - a tiktoken rank file ("base64 rank" lines): Llama 3, GLM-4;
//  - a Hugging Face tokenizer.json (byte-level BPE);
//  - a llama2.c tokenizer .bin (its own entry count is the vocabulary size);
//  - a folder holding tokenizer.json, vocab.json + merges.txt, or
//    tokenizer.model; a tokenizer_config.json beside the file (or in the
//    folder) adds its added tokens and BOS/EOS flags.
// Throws a loom::Error naming the path and what was expected.
std::unique_ptr<Tokenizer> load(const std::string& path);

// Turns a stream of ids into printable text: returns only complete UTF-8
// characters, keeping a split multi-byte character until its last byte comes
// and turning bytes that can never form one into U+FFFD. Like decode(), it
// drops the dummy-prefix space of the first non-control token.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool special = false) : tok_(tok), special_(special) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is pending (invalid UTF-8 comes out as U+FFFD)
  void reset();

 private:
  const Tokenizer& tok_;
  bool special_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace loom::tokenizer
