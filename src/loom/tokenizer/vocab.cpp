#include "loom/tokenizer/vocab.h"

#include <algorithm>

#include "loom/core/error.h"

namespace loom::tokenizer {

Vocab::Vocab(VocabData data)
    : source_(std::move(data.source)),
      pieces_(std::move(data.pieces)),
      scores_(std::move(data.scores)),
      types_(std::move(data.types)),
      special_text_(std::move(data.special_text)) {
  LOOM_CHECK(!pieces_.empty(), "[tokenizer] {}: the vocabulary has no tokens", source_);
  LOOM_CHECK(pieces_.size() < static_cast<size_t>(INT32_MAX), "[tokenizer] {}: {} tokens are more than ids can address",
             source_, pieces_.size());
  if (scores_.empty()) scores_.assign(pieces_.size(), 0.0f);
  LOOM_CHECK(scores_.size() == pieces_.size(), "[tokenizer] {}: {} scores for {} tokens", source_, scores_.size(),
             pieces_.size());
  LOOM_CHECK(types_.size() == pieces_.size(), "[tokenizer] {}: {} token types for {} tokens", source_, types_.size(),
             pieces_.size());
  std::sort(special_text_.begin(), special_text_.end());
  for (const auto& [id, text] : special_text_) checked(id);

  index_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) {
    if (!pieces_[i].empty()) index_.insert_or_assign(pieces_[i], static_cast<int32_t>(i));
  }

  for (int32_t id = 0; id < size(); ++id) {
    const TokenType t = types_[static_cast<size_t>(id)];
    if (t != TokenType::Control && t != TokenType::Unknown && t != TokenType::UserDefined) continue;
    const std::string& text = special_text(id);
    if (text.empty()) continue;
    specials_by_first_byte_[static_cast<uint8_t>(text[0])].push_back(id);
    has_user_defined_ = has_user_defined_ || t == TokenType::UserDefined;
  }
  for (auto& bucket : specials_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
      return special_text(a).size() > special_text(b).size();
    });
  }
}

size_t Vocab::checked(int32_t id) const {
  LOOM_CHECK(id >= 0 && id < size(), "[tokenizer] {}: token id {} is outside the vocabulary (0..{})", source_, id,
             size() - 1);
  return static_cast<size_t>(id);
}

const std::string& Vocab::special_text(int32_t id) const {
  const auto it = std::lower_bound(special_text_.begin(), special_text_.end(), id,
                                   [](const auto& entry, int32_t key) { return entry.first < key; });
  if (it != special_text_.end() && it->first == id) return it->second;
  return piece(id);
}

int32_t Vocab::find(std::string_view text) const {
  const auto it = index_.find(text);
  return it == index_.end() ? -1 : it->second;
}

std::vector<Vocab::Fragment> Vocab::split_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  if (text.empty()) return out;
  if (!parse_special && !has_user_defined_) {
    out.push_back({0, text.size(), -1});
    return out;
  }
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t match = -1;
    for (int32_t id : specials_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (!parse_special && types_[static_cast<size_t>(id)] != TokenType::UserDefined) continue;
      const std::string& s = special_text(id);
      if (text.substr(pos, s.size()) == s) {
        match = id;  // the bucket is sorted longest first
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    if (pos > plain_start) out.push_back({plain_start, pos - plain_start, -1});
    const size_t length = special_text(match).size();
    out.push_back({pos, length, match});
    pos += length;
    plain_start = pos;
  }
  if (plain_start < text.size()) out.push_back({plain_start, text.size() - plain_start, -1});
  return out;
}

}  // namespace loom::tokenizer
