// Tokenizer metadata for writing GGUF files: a llama2.c vocabulary expressed
// as the SentencePiece ("llama") tokenizer.ggml.* keys that llama.cpp and
// loom read back, so a converted llama2.c model carries its own tokenizer.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"

namespace loom::tokenizer {

std::vector<std::pair<std::string, format::GgufValue>> llama2c_gguf_metadata(const format::Llama2cVocab& vocab);

}  // namespace loom::tokenizer
