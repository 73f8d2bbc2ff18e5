#include "loom/tokenizer/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <queue>
#include <tuple>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"
#include "loom/tokenizer/byte_level.h"

namespace loom::tokenizer {

namespace {

uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count = 0;
};

// Heap entry: most frequent first, then the smaller left id, then the smaller right id.
struct Candidate {
  int64_t count;
  int32_t a, b;
  bool operator<(const Candidate& o) const {
    return std::tie(count, o.a, o.b) < std::tie(o.count, a, b);
  }
};

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options)
    : o_(std::move(options)), spec_(pre_tokenizer_spec(o_.pre)), pre_(spec_.patterns, "pre-tokenizer " + o_.pre) {
  LOOM_CHECK(o_.vocab_size >= 256 + int32_t(o_.special_tokens.size()),
             "[tokenizer] a byte-level BPE vocabulary needs at least 256 + {} special tokens; asked for {}",
             o_.special_tokens.size(), o_.vocab_size);
  for (const auto& s : o_.special_tokens) LOOM_CHECK(!s.empty(), "[tokenizer] a special token cannot be empty");
}

BpeTrainer::~BpeTrainer() = default;

void BpeTrainer::add_text(std::string_view text) {
  const std::string normalised = spec_.nfc ? nfc(text) : std::string();
  const std::string_view t = spec_.nfc ? std::string_view(normalised) : text;
  std::vector<Span> spans;
  pre_.split(t, spans);
  for (const Span& s : spans) ++words_[std::string(t.substr(s.begin, s.end - s.begin))];
}

BpeTrainResult BpeTrainer::train() const {
  BpeTrainResult r;
  r.pre = o_.pre;
  r.pre_spec = spec_;
  for (int c = 0; c < 256; ++c) r.tokens.emplace_back(1, char(c));
  const int32_t n_merges = o_.vocab_size - 256 - int32_t(o_.special_tokens.size());

  // Words sorted by their text, so ids never depend on hash-map order.
  std::vector<std::pair<std::string, int64_t>> sorted(words_.begin(), words_.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [text, count] : sorted) {
    Word w;
    w.count = count;
    for (unsigned char c : text) w.symbols.push_back(int32_t(c));
    words.push_back(std::move(w));
  }

  std::unordered_map<uint64_t, int64_t> counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // words that had the pair (may hold stale entries)
  auto add_pairs = [&](int32_t wi, int64_t sign) {
    const Word& w = words[size_t(wi)];
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const uint64_t k = key(w.symbols[i], w.symbols[i + 1]);
      counts[k] += sign * w.count;
      if (sign > 0) where[k].push_back(wi);
    }
  };
  for (int32_t wi = 0; wi < int32_t(words.size()); ++wi) add_pairs(wi, +1);
  std::priority_queue<Candidate> heap;
  for (const auto& [k, c] : counts) heap.push({c, int32_t(k >> 32), int32_t(k & 0xffffffffu)});

  std::vector<int32_t> stamp(words.size(), -1);
  while (int32_t(r.merges.size()) < n_merges && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const uint64_t k = key(top.a, top.b);
    const auto it = counts.find(k);
    const int64_t now = it == counts.end() ? 0 : it->second;
    if (now != top.count) {  // stale: the count changed since this entry was pushed
      if (now > 0) heap.push({now, top.a, top.b});
      continue;
    }
    if (now < o_.min_frequency) break;
    const int32_t id = int32_t(r.tokens.size());
    r.tokens.push_back(r.tokens[size_t(top.a)] + r.tokens[size_t(top.b)]);
    r.merges.emplace_back(r.tokens[size_t(top.a)], r.tokens[size_t(top.b)]);
    std::vector<int32_t> affected = std::move(where[k]);
    where.erase(k);
    std::vector<uint64_t> touched;
    for (int32_t wi : affected) {
      if (stamp[size_t(wi)] == id) continue;  // listed twice
      stamp[size_t(wi)] = id;
      Word& w = words[size_t(wi)];
      bool has = false;
      for (size_t i = 0; i + 1 < w.symbols.size() && !has; ++i) has = w.symbols[i] == top.a && w.symbols[i + 1] == top.b;
      if (!has) continue;
      add_pairs(wi, -1);
      std::vector<int32_t> merged;
      merged.reserve(w.symbols.size());
      for (size_t i = 0; i < w.symbols.size(); ++i) {
        if (i + 1 < w.symbols.size() && w.symbols[i] == top.a && w.symbols[i + 1] == top.b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(w.symbols[i]);
        }
      }
      w.symbols = std::move(merged);
      add_pairs(wi, +1);
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) touched.push_back(key(w.symbols[i], w.symbols[i + 1]));
    }
    counts.erase(k);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t t : touched) {
      const auto c = counts.find(t);
      if (c != counts.end() && c->second > 0) heap.push({c->second, int32_t(t >> 32), int32_t(t & 0xffffffffu)});
    }
  }
  for (const auto& s : o_.special_tokens) {
    r.special_ids.push_back(int32_t(r.tokens.size()));
    r.tokens.push_back(s);
  }
  return r;
}

void write_hf_tokenizer(const BpeTrainResult& r, const std::string& dir) {
  using nlohmann::json;
  std::filesystem::create_directories(dir);
  json vocab = json::object();
  std::vector<bool> special(r.tokens.size(), false);
  for (int32_t id : r.special_ids) special[size_t(id)] = true;
  for (size_t id = 0; id < r.tokens.size(); ++id)
    vocab[special[id] ? r.tokens[id] : byte_level::from_bytes(r.tokens[id])] = id;
  json merges = json::array();
  for (const auto& [a, b] : r.merges) merges.push_back(byte_level::from_bytes(a) + " " + byte_level::from_bytes(b));
  json added = json::array();
  for (int32_t id : r.special_ids)
    added.push_back({{"id", id}, {"content", r.tokens[size_t(id)]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  json pre = json::array();
  for (const auto& p : r.pre_spec.patterns)
    pre.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
  pre.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
  const json tok = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", r.pre_spec.nfc ? json{{"type", "NFC"}} : json()},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre}}},
      {"post_processor", json()},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", json()}, {"unk_token", json()}, {"byte_fallback", false}, {"vocab", vocab},
        {"merges", merges}}},
  };
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"add_bos_token", false},
                 {"add_eos_token", false},
                 {"bos_token", json()},
                 {"eos_token", r.special_ids.empty() ? json() : json(r.tokens[size_t(r.special_ids[0])])}};
  for (const auto& [name, text] : {std::pair{"/tokenizer.json", tok.dump(1) + "\n"},
                                   std::pair{"/tokenizer_config.json", config.dump(2) + "\n"}}) {
    format::AtomicFile out(dir + name);
    out.write(text.data(), text.size());
    out.commit();
  }
}

}  // namespace loom::tokenizer
