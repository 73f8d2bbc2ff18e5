#include "loom/tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "loom/tokenizer/utf8.h"

namespace loom::tokenizer::byte_level {

namespace {

// GPT-2's bytes_to_unicode(): the printable Latin-1 bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes, in order,
// take the code points 256, 257, ...
struct Map {
  std::array<uint32_t, 256> code{};  // byte -> code point
  std::array<int16_t, 324> byte{};   // code point -> byte, -1 if none
  Map() {
    byte.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      code[b] = printable ? b : next++;
      byte[code[b]] = static_cast<int16_t>(b);
    }
  }
};

const Map& map() {
  static const Map m;  // immutable after construction
  return m;
}

}  // namespace

bool to_bytes(std::string_view piece, std::string& out) {
  const Map& m = map();
  out.clear();
  for (size_t i = 0; i < piece.size();) {
    const size_t n = utf8::char_length(piece, i);
    if (n == 0 || n > 2) return false;  // the map's code points (< 324) take 1 or 2 bytes
    uint32_t cp = static_cast<uint8_t>(piece[i]);
    if (n == 2) cp = ((cp & 0x1F) << 6) | (static_cast<uint8_t>(piece[i + 1]) & 0x3F);
    if (cp >= m.byte.size() || m.byte[cp] < 0) return false;
    out.push_back(static_cast<char>(m.byte[cp]));
    i += n;
  }
  return true;
}

std::string from_bytes(std::string_view bytes) {
  const Map& m = map();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const uint32_t cp = m.code[static_cast<uint8_t>(c)];
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

}  // namespace loom::tokenizer::byte_level
