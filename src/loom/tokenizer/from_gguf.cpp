// Builds a tokenizer from the tokenizer.ggml.* metadata of a GGUF file. The
// token table, special ids and end-of-generation set are read the same way
// for every algorithm; tokenizer.ggml.model then picks the algorithm.
#include <algorithm>
#include <string_view>

#include "loom/core/error.h"
#include "loom/format/metadata.h"
#include "loom/tokenizer/bpe.h"
#include "loom/tokenizer/byte_level.h"
#include "loom/tokenizer/spm.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/vocab.h"

namespace loom::tokenizer {

namespace {

using format::Metadata;
using format::GgufType;
using format::GgufValue;

// Texts of end-of-generation tokens that conversions do not always declare
// through an *_token_id key (chat turn ends, end-of-text markers).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "<|end_of_text|>", "<end_of_utterance>",
};

struct GgufVocab {
  VocabData data;
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  std::vector<int32_t> eog;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
};

const GgufValue* find_array(const Metadata& f, std::string_view key, bool numeric) {
  const GgufValue* v = f.find(key);
  if (!v) return nullptr;
  const bool ok = v->is_array() && (numeric ? v->element_type() != GgufType::STRING && v->element_type() != GgufType::ARRAY
                                            : v->element_type() == GgufType::STRING);
  LOOM_CHECK(ok, "[tokenizer] {}: '{}' must be an array of {}, got {}", f.source(), key, numeric ? "numbers" : "strings",
             v->to_display(4));
  return v;
}

// An optional token id; `fallback` when absent. Ids outside the vocabulary
// are an error: a file that names a missing BOS is broken.
int32_t read_id(const Metadata& f, std::string_view key, int32_t fallback, int32_t n_tokens) {
  const GgufValue* v = f.find(key);
  if (!v) return fallback < n_tokens ? fallback : -1;
  LOOM_CHECK(v->is_integer(), "[tokenizer] {}: '{}' must be an integer, got {}", f.source(), key, v->to_display(4));
  const int64_t id = v->as_int();
  LOOM_CHECK(id >= 0 && id < n_tokens, "[tokenizer] {}: '{}' = {} is outside the vocabulary (0..{})", f.source(), key,
             id, n_tokens - 1);
  return static_cast<int32_t>(id);
}

GgufVocab read_vocab(const Metadata& f, const std::string& model) {
  GgufVocab g;
  VocabData& d = g.data;
  d.source = f.source();

  const GgufValue* tokens = find_array(f, "tokenizer.ggml.tokens", false);
  LOOM_CHECK(tokens, "[tokenizer] {}: missing 'tokenizer.ggml.tokens' (the token list); the file has no usable vocabulary",
             f.source());
  d.pieces = tokens->strings();
  const size_t n = d.pieces.size();
  LOOM_CHECK(n > 0 && n < static_cast<size_t>(INT32_MAX), "[tokenizer] {}: 'tokenizer.ggml.tokens' has {} entries",
             f.source(), n);
  const auto n_tokens = static_cast<int32_t>(n);

  if (const GgufValue* scores = find_array(f, "tokenizer.ggml.scores", true)) {
    LOOM_CHECK(scores->size() == n, "[tokenizer] {}: 'tokenizer.ggml.scores' has {} entries for {} tokens", f.source(),
               scores->size(), n);
    d.scores = scores->floats();
  }

  const GgufValue* types = find_array(f, "tokenizer.ggml.token_type", true);
  if (types) {
    LOOM_CHECK(types->size() == n, "[tokenizer] {}: 'tokenizer.ggml.token_type' has {} entries for {} tokens",
               f.source(), types->size(), n);
    const std::vector<int64_t> raw = types->ints();
    d.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      LOOM_CHECK(raw[i] >= 0 && raw[i] <= 6, "[tokenizer] {}: token {} has type {}, not a GGUF token type (0..6)",
                 f.source(), i, raw[i]);
      d.types.push_back(static_cast<TokenType>(raw[i]));
    }
  } else {
    // Old conversions: recognise byte tokens by their text.
    d.types.assign(n, TokenType::Normal);
    for (size_t i = 0; i < n; ++i) {
      const std::string& p = d.pieces[i];
      if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') d.types[i] = TokenType::Byte;
    }
  }

  // SentencePiece ("llama") vocabularies put <unk>, <s>, </s> at 0, 1, 2
  // unless the file says otherwise.
  const bool spm = model == "llama";
  g.bos = read_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n_tokens);
  g.eos = read_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n_tokens);
  g.unk = read_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n_tokens);
  if (!types) {
    if (g.unk >= 0) d.types[static_cast<size_t>(g.unk)] = TokenType::Unknown;
    if (g.bos >= 0) d.types[static_cast<size_t>(g.bos)] = TokenType::Control;
    if (g.eos >= 0) d.types[static_cast<size_t>(g.eos)] = TokenType::Control;
  }
  const int32_t eot = read_id(f, "tokenizer.ggml.eot_token_id", -1, n_tokens);
  const int32_t eom = read_id(f, "tokenizer.ggml.eom_token_id", -1, n_tokens);
  g.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", spm);
  g.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  g.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", spm);

  auto add_eog = [&](int32_t id) {
    if (id >= 0 && std::find(g.eog.begin(), g.eog.end(), id) == g.eog.end()) g.eog.push_back(id);
  };
  add_eog(g.eos);
  add_eog(eot);
  add_eog(eom);
  for (int32_t id = 0; id < n_tokens; ++id) {
    const std::string& p = d.pieces[static_cast<size_t>(id)];
    if (std::find(std::begin(kEogTexts), std::end(kEogTexts), p) == std::end(kEogTexts)) continue;
    add_eog(id);
  }
  // End-of-generation tokens are never printed as text, whatever type the
  // conversion gave them (Phi-3 ships some as user-defined).
  for (int32_t id : g.eog) d.types[static_cast<size_t>(id)] = TokenType::Control;
  return g;
}

std::unique_ptr<Tokenizer> make_spm(GgufVocab g) {
  SpmOptions o;
  o.add_space_prefix = g.add_space_prefix;
  o.add_bos = g.add_bos;
  o.add_eos = g.add_eos;
  o.bos = g.bos;
  o.eos = g.eos;
  o.unk = g.unk;
  o.eog = std::move(g.eog);
  return std::make_unique<SpmTokenizer>(Vocab(std::move(g.data)), std::move(o));
}

// The id of the token whose piece is `text`, -1 if none.
int32_t find_piece(const VocabData& d, std::string_view text) {
  for (size_t i = 0; i < d.pieces.size(); ++i)
    if (d.pieces[i] == text) return static_cast<int32_t>(i);
  return -1;
}

// Byte-level BPE ("gpt2" tokenizer model): pieces are in GPT-2's byte-level
// spelling, tokenizer.ggml.merges lists "left right" pairs best first, and
// tokenizer.ggml.pre names the family's pre-tokenizer.
std::unique_ptr<Tokenizer> make_bpe(const Metadata& f, GgufVocab g) {
  const GgufValue* pre_value = f.find("tokenizer.ggml.pre");
  LOOM_CHECK(!pre_value || pre_value->is_string(), "[tokenizer] {}: 'tokenizer.ggml.pre' must be a string, got {}",
             f.source(), pre_value ? pre_value->to_display(4) : "");
  // Old conversions have no pre-tokenizer name; GPT-2's is the original
  // byte-level one.
  const std::string pre = pre_value ? pre_value->as_string() : "gpt-2";
  BpeOptions o;
  try {
    o.pre = pre_tokenizer_spec(pre);
  } catch (const Error& e) {
    fail("[tokenizer] {}: {}", f.source(), e.what());
  }

  const GgufValue* merges = find_array(f, "tokenizer.ggml.merges", false);
  LOOM_CHECK(merges,
             "[tokenizer] {}: a 'gpt2' (byte-level BPE) vocabulary needs 'tokenizer.ggml.merges', which is missing",
             f.source());
  BpeMerges m;
  const std::vector<std::string> lines = merges->strings();
  m.pairs.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string::npos;
    LOOM_CHECK(space != std::string::npos, "[tokenizer] {}: merge {} ('{}') is not of the form 'left right'",
               f.source(), i, line);
    std::pair<std::string, std::string> pair;
    if (!byte_level::to_bytes(std::string_view(line).substr(0, space), pair.first) ||
        !byte_level::to_bytes(std::string_view(line).substr(space + 1), pair.second))
      continue;  // not byte-level text: can never apply
    m.pairs.push_back(std::move(pair));
  }

  const size_t n = g.data.pieces.size();
  std::vector<std::string> bytes(n);
  for (size_t i = 0; i < n; ++i) {
    if (!byte_level::to_bytes(g.data.pieces[i], bytes[i])) bytes[i] = g.data.pieces[i];
  }

  o.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", o.pre.ignore_merges && pre != "glm4" && pre != "chatglm-bpe");
  o.add_eos = g.add_eos;
  o.bos = g.bos;
  o.eos = g.eos;
  o.eog = std::move(g.eog);
  if (pre == "glm4" || pre == "chatglm-bpe") {
    // GLM-4 prompts start with [gMASK]<sop> rather than a BOS token.
    const int32_t gmask = find_piece(g.data, "[gMASK]");
    const int32_t sop = find_piece(g.data, "<sop>");
    if (gmask >= 0 && sop >= 0) o.bos_tokens = {gmask, sop};
  }
  return std::make_unique<BpeTokenizer>(Vocab(std::move(g.data)), std::move(bytes), m, std::move(o));
}

}  // namespace

std::unique_ptr<Tokenizer> from_gguf(const format::Metadata& gguf) {
  const GgufValue* model_value = gguf.find("tokenizer.ggml.model");
  LOOM_CHECK(model_value, "[tokenizer] {}: no tokenizer in this file (metadata key 'tokenizer.ggml.model' is missing)",
             gguf.source());
  LOOM_CHECK(model_value->is_string(), "[tokenizer] {}: 'tokenizer.ggml.model' must be a string, got {}", gguf.source(),
             model_value->to_display(4));
  const std::string& model = model_value->as_string();
  if (model == "llama") return make_spm(read_vocab(gguf, model));
  if (model == "gpt2") return make_bpe(gguf, read_vocab(gguf, model));
  fail("[tokenizer] {}: tokenizer model '{}' is not supported yet (loom reads 'llama' SentencePiece and 'gpt2' "
       "byte-level BPE vocabularies)",
       gguf.source(), model);
}

}  // namespace loom::tokenizer
