// json_constraint: the JSON recognizer (json_recognizer.h) applied to a
// vocabulary. mask() walks a byte trie of all token strings depth first,
// stepping the recognizer along and pruning a subtree at its first rejected
// byte, so tokens that share a prefix share the work. Inside a string, where
// almost every token is allowed, tokens of plain content (no quote,
// backslash or control byte, whole UTF-8 characters) are allowed by their
// character count alone and only the other tokens are walked.
//
// What the generated text may be (beyond the schema):
// - at most 20 whitespace bytes in a row before the value and between its
//   tokens, none after it: the text ends with the value's last byte;
// - numbers of at most 15+15 digits and a 2-digit exponent; "integer" means
//   no fraction and no exponent; at most 32 open objects/arrays;
// - object keys in any order, each declared property at most once, spelled
//   as nlohmann::json::dump() does (escapes: the short ones, \u00xx only for
//   other control characters); enum and const values exactly in dump()'s
//   compact form;
// - strings valid UTF-8 (may be split across tokens), escapes checked, lone
//   surrogates refused.
// End-of-generation tokens are allowed once the value is whole; control
// tokens (no text) never. complete() is true when nothing but the end may
// follow (always after an object or array; a top-level number may go on).
// With no end-of-generation ids in the table, mask() then forbids every
// token: the caller must stop on complete().
#include "loom/sample/constraint.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "loom/core/error.h"
#include "loom/sample/json_recognizer.h"

namespace loom::sample {

namespace {

using json::Frame;
using json::Paths;

// Token strings in a trie laid out in preorder: the children of node i are
// i + 1, then each next sibling at the previous one's `end`.
struct Trie {
  struct Node {
    uint32_t end = 0;        // one past the last node of this subtree
    uint32_t tok_begin = 0;  // tokens whose string ends here: ids[tok_begin, tok_end)
    uint32_t tok_end = 0;
    uint8_t byte = 0;
  };
  std::vector<Node> nodes;
  std::vector<int32_t> ids;
  size_t max_depth = 0;

  // `order`: token ids with non-empty strings, sorted by their strings.
  Trie(const std::vector<std::string>& bytes, const std::vector<int32_t>& order) {
    nodes.emplace_back();
    std::vector<uint32_t> path = {0};  // path[d]: the node at depth d
    const std::string* prev = nullptr;
    for (int32_t id : order) {
      const std::string& s = bytes[size_t(id)];
      size_t common = 0;
      if (prev) {
        while (common < prev->size() && common < s.size() && (*prev)[common] == s[common]) ++common;
      }
      while (path.size() > common + 1) {
        nodes[path.back()].end = static_cast<uint32_t>(nodes.size());
        path.pop_back();
      }
      for (size_t d = common; d < s.size(); ++d) {
        Node n;
        n.byte = uint8_t(s[d]);
        nodes.push_back(n);
        path.push_back(static_cast<uint32_t>(nodes.size() - 1));
      }
      Node& n = nodes[path.back()];
      ids.push_back(id);
      if (n.tok_begin == n.tok_end) n.tok_begin = static_cast<uint32_t>(ids.size() - 1);
      n.tok_end = static_cast<uint32_t>(ids.size());
      max_depth = std::max(max_depth, s.size());
      prev = &s;
    }
    for (uint32_t i : path) nodes[i].end = static_cast<uint32_t>(nodes.size());
  }
};

// A token that is plain string content, and its length in characters.
struct Plain {
  uint32_t chars;
  int32_t id;
};

// Characters in `s` if it is plain string content, else -1.
int64_t plain_chars(const std::string& s) {
  uint8_t st = json::kContent;
  int64_t chars = 0;
  for (char ch : s) {
    const uint8_t c = uint8_t(ch);
    if (c == '"' || c == '\\') return -1;
    st = json::string_next(st, c);
    if (st == json::kStringDead) return -1;
    if (st == json::kContent) ++chars;
  }
  return st == json::kContent ? chars : -1;
}

class JsonConstraint final : public Constraint, public std::enable_shared_from_this<JsonConstraint> {
 public:
  JsonConstraint(std::shared_ptr<const TokenTable> vocab, json::Grammar grammar)
      : vocab_(std::move(vocab)), grammar_(std::move(grammar)), rec_(grammar_), eog_(vocab_->end_of_generation),
        all_(vocab_->bytes, sorted_tokens()), special_(vocab_->bytes, special_tokens()) {}

  std::unique_ptr<ConstraintState> start() const override;

  const TokenTable& vocab() const { return *vocab_; }
  const json::Recognizer& rec() const { return rec_; }
  const Trie& all() const { return all_; }
  const Trie& special() const { return special_; }
  const std::vector<Plain>& plain() const { return plain_; }
  bool is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }
  const std::vector<int32_t>& eog() const { return eog_; }

 private:
  // Ids of the tokens with text, sorted by it (end-of-generation tokens
  // are never text). Also sorts eog_.
  std::vector<int32_t> sorted_tokens() {
    std::sort(eog_.begin(), eog_.end());
    const std::vector<std::string>& bytes = vocab_->bytes;
    for (size_t id = 0; id < bytes.size(); ++id) {
      if (!bytes[id].empty() && !is_eog(int32_t(id))) order_.push_back(int32_t(id));
    }
    std::sort(order_.begin(), order_.end(),
              [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
    return order_;
  }

  // The tokens of order_ that are not plain string content; fills plain_
  // with the others.
  std::vector<int32_t> special_tokens() {
    std::vector<int32_t> special;
    for (int32_t id : order_) {
      const int64_t chars = plain_chars(vocab_->bytes[size_t(id)]);
      if (chars >= 0) {
        plain_.push_back({uint32_t(chars), id});
      } else {
        special.push_back(id);
      }
    }
    std::stable_sort(plain_.begin(), plain_.end(), [](const Plain& a, const Plain& b) { return a.chars < b.chars; });
    order_ = {};
    return special;
  }

  std::shared_ptr<const TokenTable> vocab_;
  json::Grammar grammar_;
  json::Recognizer rec_;
  std::vector<int32_t> eog_;    // sorted
  std::vector<int32_t> order_;  // scratch while building
  std::vector<Plain> plain_;    // by character count
  Trie all_;
  Trie special_;
};

class JsonState final : public ConstraintState {
 public:
  explicit JsonState(std::shared_ptr<const JsonConstraint> c)
      : owner_(std::move(c)), c_(*owner_), paths_(c_.rec().start()),
        levels_(std::max<size_t>({c_.all().max_depth, c_.special().max_depth, 1}) + 1),
        allowed_(c_.vocab().bytes.size()) {}

  void mask(std::span<float> logits) override {
    std::fill(allowed_.begin(), allowed_.end(), uint8_t{0});
    for (size_t i = 0; i < paths_.size(); ++i) {
      const std::span<const Frame> stack = paths_[i];
      const int64_t room = c_.rec().free_string_room(stack);
      const Trie& trie = room >= 0 ? c_.special() : c_.all();
      if (room >= 0) {
        for (const Plain& p : c_.plain()) {
          if (p.chars > room) break;
          allowed_[size_t(p.id)] = 1;
        }
      }
      levels_[0].clear();
      levels_[0].add(stack);
      walk(trie, 0, 0);
    }
    if (c_.rec().complete(paths_)) {
      for (int32_t id : c_.eog()) {
        if (size_t(id) < allowed_.size()) allowed_[size_t(id)] = 1;
      }
    }
    const float ninf = -std::numeric_limits<float>::infinity();
    for (size_t id = 0; id < logits.size(); ++id) {
      if (id >= allowed_.size() || !allowed_[id]) logits[id] = ninf;
    }
  }

  void accept(int32_t token) override {
    const TokenTable& v = c_.vocab();
    LOOM_CHECK(token >= 0 && size_t(token) < v.bytes.size(), "[sample] json constraint: token id {} is outside "
               "the vocabulary ({} tokens)", token, v.bytes.size());
    if (c_.is_eog(token)) {
      LOOM_CHECK(c_.rec().complete(paths_), "[sample] json constraint: end-of-generation token {} before the "
                 "JSON text is complete; mask() forbids it there", token);
      return;
    }
    const std::string& bytes = v.bytes[size_t(token)];
    LOOM_CHECK(!bytes.empty(), "[sample] json constraint: control token {} cannot appear in JSON text", token);
    Paths* cur = &paths_;
    for (char ch : bytes) {
      Paths& next = cur == &levels_[0] ? levels_[1] : levels_[0];
      next.clear();
      c_.rec().step(*cur, uint8_t(ch), next);
      LOOM_CHECK(!next.empty(), "[sample] json constraint: token {} ({}) cannot continue the JSON text here; "
                 "call mask() before sampling", token, printable(bytes));
      cur = &next;
    }
    std::swap(paths_, *cur);
  }

  // The value is whole and nothing but the end may follow. A top-level
  // number is not complete after "12" (it may go on), though mask() allows
  // end-of-generation there: the model decides where such a number ends.
  bool complete() const override { return c_.rec().finished(paths_, scratch_); }

 private:
  static std::string printable(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
      const uint8_t c = uint8_t(ch);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += ch;
      } else if (c < 0x20 || c >= 0x7F) {
        out += fmt::format("\\x{:02x}", c);
      } else {
        out += ch;
      }
    }
    return out + "\"";
  }

  // Marks the tokens below trie node `node` that the stacks in levels_[depth] accept.
  void walk(const Trie& t, uint32_t node, size_t depth) {
    const uint32_t end = t.nodes[node].end;
    Paths& next = levels_[depth + 1];
    for (uint32_t ch = node + 1; ch < end; ch = t.nodes[ch].end) {
      const Trie::Node& n = t.nodes[ch];
      next.clear();
      c_.rec().step(levels_[depth], n.byte, next);
      if (next.empty()) continue;
      for (uint32_t i = n.tok_begin; i < n.tok_end; ++i) allowed_[size_t(t.ids[i])] = 1;
      if (n.end > ch + 1) walk(t, ch, depth + 1);
    }
  }

  std::shared_ptr<const JsonConstraint> owner_;
  const JsonConstraint& c_;
  Paths paths_;
  mutable Paths scratch_;         // for complete()
  std::vector<Paths> levels_;     // the walk's states by trie depth (reused, so mask() rarely allocates)
  std::vector<uint8_t> allowed_;  // by token id
};

std::unique_ptr<ConstraintState> JsonConstraint::start() const { return std::make_unique<JsonState>(shared_from_this()); }

}  // namespace

std::shared_ptr<const Constraint> json_constraint(std::shared_ptr<const TokenTable> vocab,
                                                  const std::string& schema_json) {
  LOOM_CHECK(vocab != nullptr, "[sample] json constraint: no token table");
  return std::make_shared<JsonConstraint>(std::move(vocab), json::compile_schema(schema_json));
}

}  // namespace loom::sample
