// Pre-tokenization for byte-level BPE: the text is cut into words with each
// model family's regular expressions (PCRE2 with UTF and UCP, so \p{L}, \p{N}
// and \s are the full Unicode classes), and BPE then merges within a word.
// Internal to the tokenizer room.
//
//   PreTokenizer pre(pre_tokenizer_spec("llama3").patterns, "llama3");
//   std::vector<Span> words;
//   pre.split("Hello world", words);   // {0, 5} "Hello", {5, 11} " world"
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_match_data_8;  // PCRE2's match block (pcre2.h stays out of this header)

namespace loom::tokenizer {

// A byte range [begin, end) of the text.
struct Span {
  uint32_t begin = 0;
  uint32_t end = 0;
};

// How a family prepares text for BPE.
struct PreTokenizerSpec {
  // Applied in order, each to every word the previous ones produced; matches
  // and the text between them both become words (Hugging Face's Split with
  // "Isolated" behaviour).
  std::vector<std::string> patterns;
  bool nfc = false;            // Unicode NFC before splitting (Qwen2)
  bool ignore_merges = false;  // a word that is a vocabulary entry is one token (tiktoken; Llama 3)
};

// The pre-tokenizer of a family by its GGUF `tokenizer.ggml.pre` name (the
// names llama.cpp writes: "gpt-2", "llama-bpe", "qwen2", "deepseek-llm",
// "deepseek-coder", "chatglm-bpe", ...). Throws for names loom does not know.
PreTokenizerSpec pre_tokenizer_spec(std::string_view name);

// Named regular expressions of the families, for tokenizer files that name a
// family rather than carry a pattern.
namespace patterns {
extern const char* const kGpt2;
extern const char* const kLlama3;  // also GLM-4 and OpenAI's cl100k_base
extern const char* const kQwen2;
}  // namespace patterns

class PreTokenizer {
 public:
  // Compiles the patterns (throws a loom::Error naming `source` for a bad one).
  PreTokenizer(std::vector<std::string> patterns, std::string source);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Appends the words of `text`, in order and covering it exactly. Bytes that
  // are not well-formed UTF-8 never reach the regular expressions: each
  // ill-formed sequence is a word of its own. Safe to call from several
  // threads at once.
  void split(std::string_view text, std::vector<Span>& words) const;

  bool empty() const { return compiled_.empty(); }

 private:
  struct Compiled;
  void split_valid(std::string_view text, Span run, std::vector<Span>& words) const;
  void apply(const Compiled& pattern, std::string_view text, Span piece, pcre2_real_match_data_8* md,
             std::vector<Span>& out) const;

  std::string source_;
  std::vector<std::unique_ptr<Compiled>> compiled_;
};

// Unicode NFC of well-formed UTF-8 (utf8proc); ill-formed bytes are kept as
// they are and never combine with their neighbours.
std::string nfc(std::string_view text);

}  // namespace loom::tokenizer
