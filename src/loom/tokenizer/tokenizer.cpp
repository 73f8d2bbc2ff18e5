#include "loom/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "loom/core/error.h"
#include "loom/format/llama2c.h"
#include "loom/tokenizer/spm.h"
#include "loom/tokenizer/utf8.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {

namespace {

// The encoder's dummy-prefix space sits on the first token that is not a
// control token (BOS and friends come before it).
void strip_dummy_prefix(const Tokenizer& tok, int32_t id, std::string& bytes, bool& at_start) {
  if (!at_start || tok.type(id) == TokenType::Control) return;
  at_start = false;
  if (tok.adds_space_prefix() && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
}

// Moves the complete characters out of `pending`, each ill-formed sequence as
// one U+FFFD. A character cut off at the end stays pending for the next
// token, unless this is the final call.
std::string take_text(std::string& pending, bool final) {
  std::string out;
  size_t i = 0;
  while (i < pending.size()) {
    const size_t n = utf8::char_length(pending, i);
    if (n > 0) {
      out.append(pending, i, n);
      i += n;
      continue;
    }
    if (!final && utf8::is_truncated(pending, i)) break;
    out += utf8::kReplacement;
    i += utf8::maximal_subpart(pending, i);
  }
  pending.erase(0, i);
  return out;
}

}  // namespace

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    std::string bytes = token_bytes(id, special);
    strip_dummy_prefix(*this, id, bytes, at_start);
    out += bytes;
  }
  return out;
}

bool Tokenizer::is_eog(int32_t id) const { return std::find(eog_.begin(), eog_.end(), id) != eog_.end(); }

std::string StreamDecoder::push(int32_t id) {
  std::string bytes = tok_.token_bytes(id, special_);
  strip_dummy_prefix(tok_, id, bytes, at_start_);
  pending_ += bytes;
  return take_text(pending_, /*final=*/false);
}

std::string StreamDecoder::flush() { return take_text(pending_, /*final=*/true); }

void StreamDecoder::reset() {
  pending_.clear();
  at_start_ = true;
}

std::unique_ptr<Tokenizer> from_llama2c(const format::Llama2cVocab& file) {
  const std::string source = "llama2.c vocabulary";
  LOOM_CHECK(file.pieces.size() >= 3, "[tokenizer] {}: {} tokens; expected at least <unk>, <s>, </s> at ids 0, 1, 2",
             source, file.pieces.size());
  LOOM_CHECK(file.scores.size() == file.pieces.size(), "[tokenizer] {}: {} scores for {} tokens", source,
             file.scores.size(), file.pieces.size());

  VocabData data;
  data.source = source;
  data.pieces = file.pieces;
  data.scores = file.scores;
  data.types.assign(file.pieces.size(), TokenType::Normal);
  data.types[0] = TokenType::Unknown;
  data.types[1] = TokenType::Control;
  data.types[2] = TokenType::Control;
  for (size_t i = 3; i < file.pieces.size(); ++i) {
    const std::string& p = file.pieces[i];
    // run.c treats any piece that parses as <0xAB> as that byte.
    const bool hex = p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
                     std::isxdigit(static_cast<unsigned char>(p[3])) &&
                     std::isxdigit(static_cast<unsigned char>(p[4]));
    if (hex) data.types[i] = TokenType::Byte;
  }
  // llama2.c's exporter writes BOS/EOS as "\n<s>\n" and "\n</s>\n"; users
  // write "<s>".
  for (int32_t id = 0; id < 3; ++id) {
    const std::string& p = file.pieces[static_cast<size_t>(id)];
    const size_t first = p.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) continue;
    const size_t last = p.find_last_not_of(" \t\r\n");
    if (first != 0 || last + 1 != p.size()) data.special_text.emplace_back(id, p.substr(first, last + 1 - first));
  }

  SpmOptions options;
  options.space_marker = " ";
  options.add_space_prefix = true;
  options.bytes_before_merge = true;
  options.add_bos = true;  // run.c always starts the prompt with BOS
  options.bos = 1;
  options.eos = 2;
  options.unk = 0;
  // run.c stops generating at BOS: llama2.c models delimit stories with it.
  options.eog = {2, 1};
  return std::make_unique<SpmTokenizer>(Vocab(std::move(data)), std::move(options));
}

}  // namespace loom::tokenizer
