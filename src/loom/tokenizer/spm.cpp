#include "loom/tokenizer/spm.h"

#include <fmt/format.h>

#include <cstdint>
#include <queue>
#include <utility>

#include "loom/core/error.h"
#include "loom/tokenizer/utf8.h"

namespace loom::tokenizer {

namespace {

// "<0xAB>" -> 0xAB; -1 if `piece` is not a byte token's text.
int parse_byte_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from == to) return;
  std::string out;
  out.reserve(s.size());
  size_t start = 0;
  for (size_t hit = s.find(from); hit != std::string::npos; hit = s.find(from, start)) {
    out.append(s, start, hit - start);
    out.append(to);
    start = hit + from.size();
  }
  out.append(s, start, std::string::npos);
  s = std::move(out);
}

// One piece of the text being merged: a doubly linked list over the
// characters, so a merge is O(1) and needs no copying.
struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
  uint32_t length;  // 0 once merged into its left neighbour
  bool frozen;      // byte fallback already decided (llama2.c); never merges
};

// A candidate merge of two adjacent symbols. The queue may hold stale
// candidates (one side merged elsewhere since); they are recognised by the
// lengths no longer adding up, because a symbol only ever grows.
struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t length;
};

// Highest score first; equal scores leftmost first (as SentencePiece and
// llama.cpp do).
struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(Vocab vocab, SpmOptions options) : vocab_(std::move(vocab)), options_(std::move(options)) {
  const std::string& src = vocab_.source();
  auto check_special = [&](int32_t id, const char* what) {
    LOOM_CHECK(id >= -1 && id < vocab_.size(), "[tokenizer] {}: {} token id {} is outside the vocabulary (0..{})", src,
               what, id, vocab_.size() - 1);
  };
  check_special(options_.bos, "BOS");
  check_special(options_.eos, "EOS");
  check_special(options_.unk, "unknown");
  for (int32_t id : options_.eog) check_special(id, "end-of-generation");
  LOOM_CHECK(!options_.space_marker.empty(), "[tokenizer] {}: empty space marker", src);
  bos_ = options_.bos;
  eos_ = options_.eos;
  unk_ = options_.unk;
  eog_ = options_.eog;
  default_add_eos_ = options_.add_eos && eos_ >= 0;
  bos_tokens_ = options_.bos_tokens;
  if (bos_tokens_.empty() && bos_ >= 0) bos_tokens_ = {bos_};
  for (int32_t id : bos_tokens_) check_special(id, "prompt prefix");
  default_add_bos_ = options_.add_bos && !bos_tokens_.empty();

  // Byte fallback ids, looked up by text like SentencePiece does; a vocabulary
  // without <0xXX> pieces may still hold the byte itself as a piece.
  for (int b = 0; b < 256; ++b) {
    int32_t id = vocab_.find(fmt::format("<0x{:02X}>", b));
    if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
    byte_tokens_[static_cast<size_t>(b)] = id;
  }

  text_.resize(static_cast<size_t>(vocab_.size()));
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    std::string& text = text_[static_cast<size_t>(id)];
    switch (vocab_.type(id)) {
      case TokenType::Byte: {
        const int b = parse_byte_piece(vocab_.piece(id));
        LOOM_CHECK(b >= 0, "[tokenizer] {}: token {} has type BYTE but its text '{}' is not of the form <0xAB>", src, id,
                   vocab_.piece(id));
        text.assign(1, static_cast<char>(b));
        break;
      }
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::Unused:
        text = vocab_.special_text(id);
        break;
      case TokenType::UserDefined:
        text = vocab_.piece(id);  // literal text, markers and all, as llama.cpp prints it
        break;
      case TokenType::Normal:
      case TokenType::Undefined:
        text = vocab_.piece(id);
        replace_all(text, options_.space_marker, " ");
        break;
    }
  }
}

std::string SpmTokenizer::token_bytes(int32_t id, bool special) const {
  const TokenType t = vocab_.type(id);  // checks the range
  if (!special && (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::Unused)) return {};
  return text_[static_cast<size_t>(id)];
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos) out.insert(out.end(), bos_tokens_.begin(), bos_tokens_.end());
  std::string sanitized;
  if (options_.sentencepiece) {
    // SentencePiece's normalizer replaces every byte that starts no
    // well-formed character with U+FFFD.
    for (size_t i = 0; i < text.size();) {
      const size_t n = utf8::char_length(text, i);
      if (n > 0) {
        sanitized.append(text.substr(i, n));
        i += n;
      } else {
        sanitized.append(utf8::kReplacement);
        ++i;
      }
    }
    if (options_.remove_extra_whitespaces) {
      std::string squeezed;
      for (char c : sanitized) {
        if (c == ' ' && (squeezed.empty() || squeezed.back() == ' ')) continue;
        squeezed.push_back(c);
      }
      while (!squeezed.empty() && squeezed.back() == ' ') squeezed.pop_back();
      sanitized = std::move(squeezed);
    }
    text = sanitized;
  }
  // Like llama.cpp and the families' Python wrappers, every run of plain text
  // that starts the input or follows a control token gets the dummy prefix.
  bool pending_prefix = options_.add_space_prefix;
  std::string run;
  for (const Vocab::Fragment& f : vocab_.split_special(text, options.parse_special)) {
    if (f.token >= 0) {
      if (options_.sentencepiece && vocab_.type(f.token) == TokenType::UserDefined) {
        // A user-defined piece is part of the text: the dummy prefix before
        // it is a piece of its own, and none follows it.
        if (pending_prefix) encode_run(options_.space_marker, out);
        pending_prefix = false;
      } else {
        pending_prefix = options_.add_space_prefix;
      }
      out.push_back(f.token);
      continue;
    }
    run.clear();
    if (pending_prefix) run += ' ';
    run.append(text.substr(f.offset, f.length));
    replace_all(run, " ", options_.space_marker);
    encode_run(run, out);
    pending_prefix = false;
  }
  if (options.add_eos && eos_ >= 0) out.push_back(eos_);
  return out;
}

int32_t SpmTokenizer::find_piece(std::string_view piece) const {
  const int32_t id = vocab_.find(piece);
  if (id < 0 || !options_.sentencepiece) return id;
  const TokenType t = vocab_.type(id);
  return t == TokenType::Normal || t == TokenType::UserDefined || t == TokenType::Unused ? id : -1;
}

void SpmTokenizer::encode_run(std::string_view text, std::vector<int32_t>& out) const {
  LOOM_CHECK(text.size() < (size_t{1} << 31), "[tokenizer] {}: a text of {} bytes is too long to encode at once",
             vocab_.source(), text.size());
  // Characters; a byte that starts no well-formed character stands alone.
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8::char_length(text, i);
    if (n == 0) n = 1;
    const bool frozen = options_.bytes_before_merge && find_piece(text.substr(i, n)) < 0;
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, index + 1, static_cast<uint32_t>(i), static_cast<uint32_t>(n), frozen});
    i += n;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::vector<Bigram> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue(LowerPriority{}, std::move(storage));
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    if (l.frozen || r.frozen) return;
    const int32_t id = find_piece(text.substr(l.offset, l.length + r.length));
    if (id < 0) return;
    queue.push({vocab_.score(id), left, right, l.length + r.length});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  // Each merge removes a symbol and adds at most two candidates, so the loop
  // runs O(n) times at O(log n) each.
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(b.left)];
    Symbol& r = symbols[static_cast<size_t>(b.right)];
    if (l.length == 0 || r.length == 0 || l.length + r.length != b.length) continue;  // stale
    l.length += r.length;
    r.length = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<size_t>(i)];
    const std::string_view piece = text.substr(s.offset, s.length);
    const int32_t id = s.frozen ? -1 : find_piece(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      append_bytes(piece, out);
    }
  }
}

void SpmTokenizer::append_bytes(std::string_view text, std::vector<int32_t>& out) const {
  bool all_bytes = true;
  for (char c : text) all_bytes = all_bytes && byte_tokens_[static_cast<uint8_t>(c)] >= 0;
  if (all_bytes) {
    for (char c : text) out.push_back(byte_tokens_[static_cast<uint8_t>(c)]);
    return;
  }
  // No byte fallback in this vocabulary: one unknown token per character, as
  // SentencePiece does without byte_fallback.
  LOOM_CHECK(unk_ >= 0,
             "[tokenizer] {}: cannot encode '{}': the vocabulary has neither byte tokens for it nor an unknown token",
             vocab_.source(), text);
  out.push_back(unk_);
}

}  // namespace loom::tokenizer
