// GPT-2's byte <-> character map: byte-level BPE vocabularies (GPT-2, Llama 3
// in Hugging Face form, Qwen2, DeepSeek) write every byte as one printable
// character, e.g. the space 0x20 as "Ġ" (U+0120), so pieces are valid text.
// Internal to the tokenizer room.
//
//   std::string raw;
//   byte_level::to_bytes("\xC4\xA0world", raw);   // raw == " world"
//   byte_level::from_bytes(" world");             // "Ġworld"
#pragma once

#include <string>
#include <string_view>

namespace loom::tokenizer::byte_level {

// The bytes a vocabulary entry stands for; false (and `out` unspecified) if
// the entry holds a character that is not in the map, i.e. the entry is not
// byte-level text (added tokens such as "<|im_start|>" are stored literally).
bool to_bytes(std::string_view piece, std::string& out);

// The byte-level spelling of raw bytes.
std::string from_bytes(std::string_view bytes);

}  // namespace loom::tokenizer::byte_level
