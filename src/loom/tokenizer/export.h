// Tokenizer metadata for writing GGUF files, as the tokenizer.ggml.* keys
// that llama.cpp and loom read back, so a converted model carries its own
// tokenizer: a llama2.c vocabulary as a SentencePiece ("llama") tokenizer,
// and a byte-level BPE tokenizer (a Hugging Face tokenizer.json, or
// vocab.json + merges.txt) as a "gpt2" tokenizer.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"

namespace loom::tokenizer {

std::vector<std::pair<std::string, format::GgufValue>> llama2c_gguf_metadata(const format::Llama2cVocab& vocab);

class Tokenizer;
// Throws a loom::Error for what GGUF cannot express: a tokenizer that is not
// byte-level BPE with a merge list (SentencePiece, tiktoken ranks), or a
// pre-tokenizer that no tokenizer.ggml.pre name stands for.
std::vector<std::pair<std::string, format::GgufValue>> bpe_gguf_metadata(const Tokenizer& tok);

}  // namespace loom::tokenizer
