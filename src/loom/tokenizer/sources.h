// Builders of tokenizers from the files of each source format, and the
// family rules (special tokens, BOS/EOS, end of generation) they apply.
// Internal to the tokenizer room: callers use load() or from_gguf().
//
//   auto config = read_tokenizer_config(folder / "tokenizer_config.json");
//   auto tok = from_tiktoken_file("tokenizers/llama3/tokenizer.model", config);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {

// A token Hugging Face adds on top of the model's vocabulary.
struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = true;  // special: control text (parsed only on request); else user-defined text
};

// What loom takes from a Hugging Face tokenizer_config.json.
struct TokenizerConfig {
  bool found = false;
  std::string path;
  std::string tokenizer_class;
  int add_bos = -1;  // -1: not given
  int add_eos = -1;
  std::string bos_token;  // content, "" if none
  std::string eos_token;
  std::vector<AddedToken> added;
};

// Reads `path` if it exists (found = false otherwise); a malformed file is an
// error naming it.
TokenizerConfig read_tokenizer_config(const std::string& path);

std::unique_ptr<Tokenizer> from_sentencepiece_file(const std::string& path, const TokenizerConfig& config);
std::unique_ptr<Tokenizer> from_tiktoken_file(const std::string& path, const TokenizerConfig& config);
std::unique_ptr<Tokenizer> from_hf_tokenizer_json(const std::string& path, const TokenizerConfig& config);
std::unique_ptr<Tokenizer> from_hf_vocab_merges(const std::string& vocab_json, const std::string& merges_txt,
                                                const TokenizerConfig& config);

// Puts added tokens into a vocabulary: ids past its end extend it (gaps are
// filled with unused placeholders), ids inside it take the new text and type.
void apply_added_tokens(VocabData& data, std::vector<std::string>* bytes, const std::vector<AddedToken>& added);

// True for the texts of tokens that end a turn or a text in the families
// loom knows (<|eot_id|>, <|im_end|>, <|endoftext|>, ...).
bool is_eog_text(std::string_view text);

// The id of the token whose piece (or special text) is `text`, -1 if none.
int32_t find_token(const VocabData& data, std::string_view text);

// Reads a whole file (throws a loom::Error naming it).
std::string read_file(const std::string& path);

}  // namespace loom::tokenizer
