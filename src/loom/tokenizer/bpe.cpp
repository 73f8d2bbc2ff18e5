#include "loom/tokenizer/bpe.h"

#include <algorithm>
#include <queue>

#include "loom/core/error.h"
#include "loom/tokenizer/byte_level.h"

namespace loom::tokenizer {

namespace {

bool has_text_bytes(TokenType t) {
  return t == TokenType::Normal || t == TokenType::Undefined || t == TokenType::Byte;
}

}  // namespace

// Per-call scratch space, reused across the words of one encode().
struct BpeTokenizer::Workspace {
  struct Symbol {
    int32_t prev;
    int32_t next;
    int32_t id;     // -1 once merged into its left neighbour
    uint32_t start;  // bytes [start, end) of the word
    uint32_t end;
  };
  // A candidate merge of symbols[left] and its right neighbour; stale once
  // either side changed, which the ids recorded here reveal (a symbol's id
  // only changes by growing).
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t left_id;
    int32_t right;
    int32_t right_id;
    int32_t result;
  };
  // Lowest rank first; equal ranks leftmost first (as tiktoken and Hugging
  // Face do).
  struct Later {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::vector<Span> words;
};

BpeTokenizer::BpeTokenizer(Vocab vocab, std::vector<std::string> bytes, const BpeMerges& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)), pre_(options_.pre.patterns, vocab_.source()) {
  const std::string& src = vocab_.source();
  const int32_t n = vocab_.size();
  LOOM_CHECK(bytes.size() == static_cast<size_t>(n), "[tokenizer] {}: {} byte strings for {} tokens", src, bytes.size(),
             n);
  auto check_special = [&](int32_t id, const char* what) {
    LOOM_CHECK(id >= -1 && id < n, "[tokenizer] {}: {} token id {} is outside the vocabulary (0..{})", src, what, id,
               n - 1);
  };
  check_special(options_.bos, "BOS");
  check_special(options_.eos, "EOS");
  for (int32_t id : options_.eog) check_special(id, "end-of-generation");
  bos_ = options_.bos;
  eos_ = options_.eos;
  eog_ = options_.eog;
  bos_tokens_ = options_.bos_tokens;
  if (bos_tokens_.empty() && bos_ >= 0) bos_tokens_ = {bos_};
  for (int32_t id : bos_tokens_) check_special(id, "prompt prefix");
  default_add_bos_ = options_.add_bos && !bos_tokens_.empty();
  default_add_eos_ = options_.add_eos && eos_ >= 0;

  bytes_ = std::move(bytes);
  by_bytes_.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    std::string& b = bytes_[static_cast<size_t>(id)];
    if (!has_text_bytes(vocab_.type(id))) {
      b = vocab_.special_text(id);  // shown with `special`; never produced by merging
      continue;
    }
    if (!b.empty()) by_bytes_.insert_or_assign(b, id);  // duplicates: the highest id wins, as in llama.cpp
  }
  // Bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF) may lack a
  // token (DeepSeek's vocabulary has none); such a byte is dropped, as the
  // reference tokenizers do. Any other missing byte means a broken file.
  for (int c = 0; c < 256; ++c) {
    const int32_t id = find_bytes(std::string(1, static_cast<char>(c)));
    const bool never_in_utf8 = c == 0xC0 || c == 0xC1 || c >= 0xF5;
    LOOM_CHECK(id >= 0 || never_in_utf8,
               "[tokenizer] {}: byte 0x{:02X} has no token; a byte-level BPE vocabulary needs one for every byte of "
               "UTF-8 text (is this the right tokenizer file?)",
               src, c);
    byte_token_[static_cast<size_t>(c)] = id;
  }

  // tiktoken files list no merges: two adjacent symbols merge if their bytes
  // together are a token, with that token's rank (looked up while encoding).
  from_ranks_ = merges.from_ranks;
  if (!from_ranks_) {
    merges_.reserve(merges.pairs.size());
    std::string joined;
    for (size_t rank = 0; rank < merges.pairs.size(); ++rank) {
      const auto& [a, b] = merges.pairs[rank];
      const int32_t left = find_bytes(a);
      const int32_t right = find_bytes(b);
      joined.assign(a).append(b);
      const int32_t result = find_bytes(joined);
      if (left < 0 || right < 0 || result < 0) continue;
      merges_.emplace(key(left, right), Merge{static_cast<int32_t>(rank), result});  // first (best) rank wins
    }
  }
}

std::vector<std::string> BpeTokenizer::merge_lines() const {
  std::vector<std::pair<int32_t, uint64_t>> by_rank;
  by_rank.reserve(merges_.size());
  for (const auto& [k, m] : merges_) by_rank.emplace_back(m.rank, k);
  std::sort(by_rank.begin(), by_rank.end());
  std::vector<std::string> lines;
  lines.reserve(by_rank.size());
  for (const auto& [rank, k] : by_rank) {
    const auto left = static_cast<size_t>(k >> 32), right = static_cast<size_t>(k & 0xffffffffu);
    lines.push_back(byte_level::from_bytes(bytes_[left]) + " " + byte_level::from_bytes(bytes_[right]));
  }
  return lines;
}

int32_t BpeTokenizer::find_bytes(std::string_view b) const {
  const auto it = by_bytes_.find(b);
  return it == by_bytes_.end() ? -1 : it->second;
}

std::string BpeTokenizer::token_bytes(int32_t id, bool special) const {
  const TokenType t = vocab_.type(id);  // checks the range
  if (!special && (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::Unused)) return {};
  return bytes_[static_cast<size_t>(id)];
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos) out.insert(out.end(), bos_tokens_.begin(), bos_tokens_.end());
  Workspace ws;
  std::string normalized;
  for (const Vocab::Fragment& f : vocab_.split_special(text, options.parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      continue;
    }
    std::string_view fragment = text.substr(f.offset, f.length);
    if (options_.pre.nfc) {
      normalized = nfc(fragment);
      fragment = normalized;
    }
    ws.words.clear();
    pre_.split(fragment, ws.words);
    for (const Span& w : ws.words) encode_word(fragment.substr(w.begin, w.end - w.begin), ws, out);
  }
  if (options.add_eos && eos_ >= 0) out.push_back(eos_);
  return out;
}

void BpeTokenizer::encode_word(std::string_view word, Workspace& ws, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() == 1) {
    if (const int32_t id = byte_token_[static_cast<uint8_t>(word[0])]; id >= 0) out.push_back(id);
    return;
  }
  if (options_.pre.ignore_merges) {
    const int32_t id = find_bytes(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  LOOM_CHECK(word.size() < (size_t{1} << 31), "[tokenizer] {}: a word of {} bytes is too long to encode",
             vocab_.source(), word.size());
  auto& symbols = ws.symbols;
  symbols.clear();
  for (size_t i = 0; i < word.size(); ++i) {
    const int32_t id = byte_token_[static_cast<uint8_t>(word[i])];
    if (id < 0) continue;
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, index + 1, id, static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1)});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  auto& heap = ws.heap;
  heap.clear();
  const Workspace::Later later;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const auto& l = symbols[static_cast<size_t>(left)];
    const auto& r = symbols[static_cast<size_t>(right)];
    Merge m;
    if (from_ranks_) {
      // Symbols are contiguous in the word, so the pair's bytes are a slice.
      const int32_t id = find_bytes(word.substr(l.start, r.end - l.start));
      if (id < 0) return;
      m = {id, id};
    } else {
      const auto it = merges_.find(key(l.id, r.id));
      if (it == merges_.end()) return;
      m = it->second;
    }
    heap.push_back({m.rank, left, l.id, right, r.id, m.result});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  // Each merge removes a symbol and adds at most two candidates: O(n log n).
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Workspace::Candidate c = heap.back();
    heap.pop_back();
    auto& l = symbols[static_cast<size_t>(c.left)];
    if (l.id != c.left_id || l.next != c.right) continue;  // stale
    auto& r = symbols[static_cast<size_t>(c.right)];
    if (r.id != c.right_id) continue;
    l.id = c.result;
    l.end = r.end;
    l.next = r.next;
    r.id = -1;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
    out.push_back(symbols[static_cast<size_t>(i)].id);
}

}  // namespace loom::tokenizer
