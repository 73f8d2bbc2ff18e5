// libFuzzer target for the tokenizer room's file parsers: the bytes are read
// as a SentencePiece .model (protobuf) and as a tiktoken rank file. A
// malformed file must end in loom::Error; a crash, a sanitizer report,
// another exception type or a timeout is a bug. Everything a successful
// parse returns is read, so a pointer past the input shows up under ASan.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "loom/core/error.h"
#include "loom/tokenizer/sentencepiece_model.h"
#include "loom/tokenizer/tiktoken.h"

namespace {

volatile size_t g_sink = 0;  // keeps the reads below from being optimised away

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  g_sink = g_sink + loom::tokenizer::looks_like_sentencepiece_model(bytes);
  g_sink = g_sink + loom::tokenizer::looks_like_tiktoken(bytes);
  try {
    const auto m = loom::tokenizer::parse_sentencepiece_model(bytes, "fuzz-input");
    if (m.pieces.empty()) __builtin_trap();  // the parser promises at least one piece
    for (const auto& p : m.pieces) {
      if (p.piece.empty() || p.type < 1 || p.type > 6) __builtin_trap();
      g_sink = g_sink + p.piece.size() + static_cast<size_t>(p.score != 0);
    }
    g_sink = g_sink + m.normalizer_name.size() + m.charsmap_size + static_cast<size_t>(m.model_type);
  } catch (const loom::Error&) {
  }
  try {
    const auto tokens = loom::tokenizer::parse_tiktoken(bytes, "fuzz-input");
    if (tokens.empty()) __builtin_trap();
    for (const auto& t : tokens) g_sink = g_sink + t.size();
  } catch (const loom::Error&) {
  }
  return 0;
}
