#include "loom/tokenizer/sentencepiece_model.h"

#include <cstring>

#include "loom/core/error.h"

namespace loom::tokenizer {

namespace {

// Protobuf wire types.
constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kBytes = 2;
constexpr int kFixed32 = 5;

// One message's bytes, read front to back; every read is checked against the
// end, and `what` names the message in errors.
class Reader {
 public:
  Reader(std::string_view bytes, const std::string& source, const char* what)
      : p_(bytes), source_(source), what_(what) {}

  bool done() const { return pos_ >= p_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      LOOM_CHECK(pos_ < p_.size(), "[tokenizer] {}: truncated SentencePiece model: a number in {} runs past its end",
                 source_, what_);
      const auto b = static_cast<uint8_t>(p_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (b < 0x80) return v;
    }
    fail("[tokenizer] {}: corrupt SentencePiece model: a number in {} is longer than 10 bytes", source_, what_);
  }

  // The next field's (number, wire type).
  std::pair<uint32_t, int> key() {
    const uint64_t k = varint();
    const auto field = k >> 3;
    LOOM_CHECK(field > 0 && field < (1u << 29), "[tokenizer] {}: corrupt SentencePiece model: field number {} in {}",
               source_, field, what_);
    return {static_cast<uint32_t>(field), static_cast<int>(k & 7)};
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    LOOM_CHECK(n <= p_.size() - pos_,
               "[tokenizer] {}: truncated SentencePiece model: a {}-byte field in {} runs past its end ({} bytes left)",
               source_, n, what_, p_.size() - pos_);
    const std::string_view v = p_.substr(pos_, n);
    pos_ += n;
    return v;
  }

  float fixed32_float() {
    LOOM_CHECK(p_.size() - pos_ >= 4, "[tokenizer] {}: truncated SentencePiece model: a 4-byte field in {}", source_,
               what_);
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits |= static_cast<uint32_t>(static_cast<uint8_t>(p_[pos_ + i])) << (8 * i);
    pos_ += 4;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  void skip(int wire) {
    switch (wire) {
      case kVarint:
        varint();
        return;
      case kFixed64:
        LOOM_CHECK(p_.size() - pos_ >= 8, "[tokenizer] {}: truncated SentencePiece model in {}", source_, what_);
        pos_ += 8;
        return;
      case kBytes:
        bytes();
        return;
      case kFixed32:
        LOOM_CHECK(p_.size() - pos_ >= 4, "[tokenizer] {}: truncated SentencePiece model in {}", source_, what_);
        pos_ += 4;
        return;
      default:
        fail("[tokenizer] {}: corrupt SentencePiece model: wire type {} in {} (not a ModelProto?)", source_, wire,
             what_);
    }
  }

  void expect(uint32_t field, int wire, int expected) const {
    LOOM_CHECK(wire == expected, "[tokenizer] {}: corrupt SentencePiece model: field {} of {} has wire type {}, not {}",
               source_, field, what_, wire, expected);
  }

  bool boolean(uint32_t field, int wire) {
    expect(field, wire, kVarint);
    return varint() != 0;
  }

  int32_t int32(uint32_t field, int wire) {
    expect(field, wire, kVarint);
    // Negative int32 values are sign-extended to 64 bits on the wire.
    const auto v = static_cast<int64_t>(varint());
    LOOM_CHECK(v >= INT32_MIN && v <= INT32_MAX, "[tokenizer] {}: corrupt SentencePiece model: field {} of {} is {}",
               source_, field, what_, v);
    return static_cast<int32_t>(v);
  }

 private:
  std::string_view p_;
  size_t pos_ = 0;
  const std::string& source_;
  const char* what_;
};

SentencePieceModel::Piece read_piece(std::string_view bytes, const std::string& source, size_t index) {
  SentencePieceModel::Piece piece;
  Reader r(bytes, source, "a piece");
  bool has_piece = false;
  while (!r.done()) {
    const auto [field, wire] = r.key();
    if (field == 1) {
      r.expect(field, wire, kBytes);
      piece.piece = std::string(r.bytes());
      has_piece = true;
    } else if (field == 2) {
      r.expect(field, wire, kFixed32);
      piece.score = r.fixed32_float();
    } else if (field == 3) {
      piece.type = r.int32(field, wire);
    } else {
      r.skip(wire);
    }
  }
  LOOM_CHECK(has_piece && !piece.piece.empty(), "[tokenizer] {}: corrupt SentencePiece model: piece {} has no text",
             source, index);
  LOOM_CHECK(piece.type >= 1 && piece.type <= 6,
             "[tokenizer] {}: corrupt SentencePiece model: piece {} ('{}') has type {}, not 1..6", source, index,
             piece.piece, piece.type);
  return piece;
}

void read_trainer(std::string_view bytes, const std::string& source, SentencePieceModel& m) {
  Reader r(bytes, source, "the trainer spec");
  while (!r.done()) {
    const auto [field, wire] = r.key();
    switch (field) {
      case 3: m.model_type = r.int32(field, wire); break;
      case 24: m.treat_whitespace_as_suffix = r.boolean(field, wire); break;
      case 35: m.byte_fallback = r.boolean(field, wire); break;
      case 40: m.unk_id = r.int32(field, wire); break;
      case 41: m.bos_id = r.int32(field, wire); break;
      case 42: m.eos_id = r.int32(field, wire); break;
      case 43: m.pad_id = r.int32(field, wire); break;
      default: r.skip(wire); break;
    }
  }
}

void read_normalizer(std::string_view bytes, const std::string& source, SentencePieceModel& m) {
  Reader r(bytes, source, "the normalizer spec");
  while (!r.done()) {
    const auto [field, wire] = r.key();
    switch (field) {
      case 1:
        r.expect(field, wire, kBytes);
        m.normalizer_name = std::string(r.bytes());
        break;
      case 2:
        r.expect(field, wire, kBytes);
        m.charsmap_size = r.bytes().size();
        break;
      case 3: m.add_dummy_prefix = r.boolean(field, wire); break;
      case 4: m.remove_extra_whitespaces = r.boolean(field, wire); break;
      case 5: m.escape_whitespaces = r.boolean(field, wire); break;
      default: r.skip(wire); break;
    }
  }
}

}  // namespace

SentencePieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& source) {
  SentencePieceModel m;
  Reader r(bytes, source, "the model");
  while (!r.done()) {
    const auto [field, wire] = r.key();
    if (field == 1) {
      r.expect(field, wire, kBytes);
      LOOM_CHECK(m.pieces.size() < static_cast<size_t>(INT32_MAX), "[tokenizer] {}: too many pieces", source);
      m.pieces.push_back(read_piece(r.bytes(), source, m.pieces.size()));
    } else if (field == 2) {
      r.expect(field, wire, kBytes);
      read_trainer(r.bytes(), source, m);
    } else if (field == 3) {
      r.expect(field, wire, kBytes);
      read_normalizer(r.bytes(), source, m);
    } else {
      r.skip(wire);
    }
  }
  LOOM_CHECK(!m.pieces.empty(), "[tokenizer] {}: the SentencePiece model has no pieces (is it a tokenizer.model file?)",
             source);
  return m;
}

bool looks_like_sentencepiece_model(std::string_view bytes) {
  // Field 1 (pieces), wire type 2, then a length, then the piece message,
  // which itself starts with field 1 (the text), wire type 2: 0x0A n... 0x0A.
  if (bytes.size() < 4 || bytes[0] != '\x0A') return false;
  size_t i = 1;
  while (i < bytes.size() && i < 6 && (static_cast<uint8_t>(bytes[i]) & 0x80)) ++i;
  return i + 1 < bytes.size() && bytes[i + 1] == '\x0A';
}

}  // namespace loom::tokenizer
