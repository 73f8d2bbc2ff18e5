// tokenizer::load(): recognising a tokenizer file or folder by its content,
// and the family rules for SentencePiece .model and tiktoken files (which
// carry no special tokens of their own): Llama 3, GLM-4, ChatGLM3, TeleChat2.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/format/mapped_file.h"
#include "loom/tokenizer/bpe.h"
#include "loom/tokenizer/sentencepiece_model.h"
#include "loom/tokenizer/sources.h"
#include "loom/tokenizer/spm.h"
#include "loom/tokenizer/tiktoken.h"

namespace loom::tokenizer {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|eom_id|>", "<|end_of_text|>", "<EOT>", "<end_of_turn>",
};

// Meta's Llama 3 tokenizer.py: 256 specials after the 128000 ranks.
std::vector<AddedToken> llama3_specials(int32_t first) {
  std::vector<std::string> names = {
      "<|begin_of_text|>",           "<|end_of_text|>",     "<|reserved_special_token_0|>",
      "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
      "<|start_header_id|>",         "<|end_header_id|>",   "<|reserved_special_token_4|>",
      "<|eot_id|>",
  };
  for (int i = 5; i < 256 - 5; ++i) names.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  std::vector<AddedToken> out;
  for (size_t i = 0; i < names.size(); ++i) out.push_back({first + static_cast<int32_t>(i), names[i], true});
  return out;
}

// GLM-4's tokenizer_config.json added_tokens_decoder (151329..151342), for a
// tokenizer.model given without its config.
std::vector<AddedToken> glm4_specials(int32_t first) {
  const char* names[] = {"<|endoftext|>", "[MASK]",         "[gMASK]",          "[sMASK]",
                         "<sop>",         "<eop>",          "<|system|>",       "<|user|>",
                         "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>",
                         "<|begin_of_video|>", "<|end_of_video|>"};
  std::vector<AddedToken> out;
  for (size_t i = 0; i < std::size(names); ++i) out.push_back({first + static_cast<int32_t>(i), names[i], true});
  return out;
}

// ChatGLM3's tokenization_chatglm.py appends these after the SentencePiece
// pieces (64789 of them): [gMASK] is 64790, sop 64792, <|user|> 64795.
std::vector<AddedToken> chatglm3_specials(int32_t first) {
  const char* names[] = {"[MASK]",     "[gMASK]",  "[sMASK]",       "sop",           "eop",
                         "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"};
  std::vector<AddedToken> out;
  for (size_t i = 0; i < std::size(names); ++i) out.push_back({first + static_cast<int32_t>(i), names[i], true});
  return out;
}

void add_eog(std::vector<int32_t>& eog, int32_t id) {
  if (id >= 0 && std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
}

void add_eog_texts(const VocabData& d, std::vector<int32_t>& eog) {
  for (size_t i = 0; i < d.pieces.size(); ++i)
    if (d.types[i] == TokenType::Control && is_eog_text(d.pieces[i])) add_eog(eog, static_cast<int32_t>(i));
}

// Counts the entries of a llama2.c tokenizer file (int32 max_token_length,
// then float score, int32 length, bytes per token); 0 if the file is not
// exactly that.
int32_t count_llama2c_entries(const format::MappedFile& f) {
  const auto* p = reinterpret_cast<const uint8_t*>(f.data());
  const size_t size = f.size();
  auto read_i32 = [&](size_t at) {
    int32_t v;
    std::memcpy(&v, p + at, 4);
    return v;
  };
  if (size < 4) return 0;
  const int32_t max_len = read_i32(0);
  if (max_len <= 0 || max_len > 4096) return 0;
  size_t pos = 4;
  int64_t n = 0;
  while (pos < size) {
    if (size - pos < 8) return 0;
    const int32_t len = read_i32(pos + 4);
    if (len < 0 || static_cast<size_t>(len) > size - pos - 8) return 0;
    pos += 8 + static_cast<size_t>(len);
    if (++n >= INT32_MAX) return 0;
  }
  return static_cast<int32_t>(n);
}

std::unique_ptr<Tokenizer> load_file(const std::string& path, const TokenizerConfig& config) {
  const auto file = format::MappedFile::open(path);
  if (format::GgufFile::has_magic(*file)) return from_gguf(format::GgufFile::open(path)->metadata());
  const std::string_view head(reinterpret_cast<const char*>(file->data()), std::min<size_t>(file->size(), 4096));
  const std::string name = fs::path(path).filename().string();
  if (name == "vocab.json") {
    const std::string merges = (fs::path(path).parent_path() / "merges.txt").string();
    LOOM_CHECK(fs::is_regular_file(merges), "[tokenizer] {}: a vocab.json needs merges.txt beside it ({} is missing)",
               path, merges);
    return from_hf_vocab_merges(path, merges, config);
  }
  const size_t first = head.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && head[first] == '{') return from_hf_tokenizer_json(path, config);
  if (looks_like_sentencepiece_model(head)) return from_sentencepiece_file(path, config);
  if (looks_like_tiktoken(head)) return from_tiktoken_file(path, config);
  if (const int32_t n = count_llama2c_entries(*file); n >= 3)
    return from_llama2c(format::parse_llama2c_vocab(*file, n));
  fail("[tokenizer] {}: not a tokenizer loom recognises; expected a GGUF file, a SentencePiece .model, a tiktoken "
       "rank file, a Hugging Face tokenizer.json or vocab.json, or a llama2.c tokenizer .bin",
       path);
}

std::unique_ptr<Tokenizer> load_folder(const fs::path& dir) {
  const TokenizerConfig config = read_tokenizer_config((dir / "tokenizer_config.json").string());
  const fs::path json = dir / "tokenizer.json";
  const fs::path model = dir / "tokenizer.model";
  if (fs::is_regular_file(json)) {
    try {
      return from_hf_tokenizer_json(json.string(), config);
    } catch (const Error&) {
      // A SentencePiece family's tokenizer.json (not byte-level) is read
      // from its tokenizer.model instead.
      if (!fs::is_regular_file(model)) throw;
    }
  }
  if (fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt"))
    return from_hf_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string(), config);
  if (fs::is_regular_file(model)) return load_file(model.string(), config);
  fail("[tokenizer] {}: no tokenizer in this folder; expected tokenizer.json, vocab.json + merges.txt, or "
       "tokenizer.model (SentencePiece or tiktoken)",
       dir.string());
}

}  // namespace

bool is_eog_text(std::string_view text) {
  return std::find(std::begin(kEogTexts), std::end(kEogTexts), text) != std::end(kEogTexts);
}

int32_t find_token(const VocabData& data, std::string_view text) {
  for (const auto& [id, t] : data.special_text)
    if (t == text) return id;
  for (size_t i = 0; i < data.pieces.size(); ++i)
    if (data.pieces[i] == text) return static_cast<int32_t>(i);
  return -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "[tokenizer] {}: cannot open the file", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  LOOM_CHECK(!in.bad(), "[tokenizer] {}: cannot read the file", path);
  return ss.str();
}

void apply_added_tokens(VocabData& data, std::vector<std::string>* bytes, const std::vector<AddedToken>& added) {
  for (const AddedToken& t : added) {
    LOOM_CHECK(t.id >= 0 && t.id < (1 << 24), "[tokenizer] {}: added token id {} is out of range", data.source, t.id);
    const auto id = static_cast<size_t>(t.id);
    if (id >= data.pieces.size()) {
      // Ids between the vocabulary and an added token are unused slots.
      data.pieces.resize(id + 1);
      data.types.resize(id + 1, TokenType::Unused);
      if (!data.scores.empty()) data.scores.resize(id + 1, 0.0f);
      if (bytes) bytes->resize(id + 1);
    }
    data.pieces[id] = t.content;
    data.types[id] = t.special ? TokenType::Control : TokenType::UserDefined;
    if (bytes) (*bytes)[id] = t.content;
  }
}

std::unique_ptr<Tokenizer> from_sentencepiece_file(const std::string& path, const TokenizerConfig& config) {
  const SentencePieceModel m = parse_sentencepiece_model(read_file(path), path);
  LOOM_CHECK(m.model_type == SentencePieceModel::kBpe,
             "[tokenizer] {}: SentencePiece model type {} is not supported (loom reads BPE models, type 2; none of "
             "its target families uses unigram)",
             path, m.model_type);
  LOOM_CHECK(m.charsmap_size == 0,
             "[tokenizer] {}: the SentencePiece normalizer '{}' has precompiled rules, which loom does not apply "
             "(it reads 'identity' models)",
             path, m.normalizer_name);
  LOOM_CHECK(!m.treat_whitespace_as_suffix, "[tokenizer] {}: treat_whitespace_as_suffix models are not supported",
             path);

  VocabData d;
  d.source = path;
  const auto n = static_cast<int32_t>(m.pieces.size());
  for (const auto& p : m.pieces) {
    d.pieces.push_back(p.piece);
    d.scores.push_back(p.score);
    d.types.push_back(static_cast<TokenType>(p.type));
  }
  const auto id_or_none = [&](int32_t id) { return id >= 0 && id < n ? id : -1; };

  SpmOptions o;
  o.sentencepiece = true;
  o.space_marker = m.escape_whitespaces ? "\xE2\x96\x81" : " ";
  o.add_space_prefix = m.add_dummy_prefix;
  o.remove_extra_whitespaces = m.remove_extra_whitespaces;
  o.unk = id_or_none(m.unk_id);
  o.bos = id_or_none(m.bos_id);
  o.eos = id_or_none(m.eos_id);
  // Llama 2's convention (Hugging Face's LlamaTokenizer) unless the config
  // says otherwise.
  o.add_bos = config.add_bos >= 0 ? config.add_bos == 1 : true;
  o.add_eos = config.add_eos == 1;

  const bool chatglm3 = config.tokenizer_class == "ChatGLMTokenizer" || (config.tokenizer_class.empty() && n == 64789);
  const bool telechat = config.tokenizer_class == "TelechatTokenizer" || (n > 1 && m.pieces[1].piece == "<_start>");
  if (chatglm3) {
    apply_added_tokens(d, nullptr, chatglm3_specials(n));
    // The prompt starts with [gMASK] sop; the chat template writes it, so it
    // is added only when asked.
    o.bos_tokens = {n + 1, n + 3};
    o.add_bos = false;
    add_eog(o.eog, o.eos);
    add_eog(o.eog, n + 6);  // <|user|>: the model hands the turn back
    add_eog(o.eog, n + 8);  // <|observation|>
  } else if (telechat) {
    o.bos = 1;  // <_start>
    o.eos = 2;  // <_end>
  }
  apply_added_tokens(d, nullptr, config.added);
  add_eog(o.eog, o.eos);
  add_eog_texts(d, o.eog);
  return std::make_unique<SpmTokenizer>(Vocab(std::move(d)), std::move(o));
}

std::unique_ptr<Tokenizer> from_tiktoken_file(const std::string& path, const TokenizerConfig& config) {
  std::vector<std::string> ranks = parse_tiktoken(read_file(path), path);
  const auto n = static_cast<int32_t>(ranks.size());
  VocabData d;
  d.source = path;
  d.pieces = ranks;
  d.types.assign(ranks.size(), TokenType::Normal);
  std::vector<std::string> bytes = std::move(ranks);

  BpeOptions o;
  o.pre = pre_tokenizer_spec("llama3");  // Llama 3's and GLM-4's regex (OpenAI's cl100k_base one)
  const bool glm4 = config.tokenizer_class == "ChatGLM4Tokenizer" || (config.tokenizer_class.empty() && n == 151329);
  const bool llama3 = !glm4 && (n == 128000 && config.added.empty());
  if (llama3) {
    apply_added_tokens(d, &bytes, llama3_specials(n));
    o.bos = n;      // <|begin_of_text|>
    o.eos = n + 1;  // <|end_of_text|>
    o.add_bos = true;
    add_eog(o.eog, n + 1);
    add_eog(o.eog, n + 9);  // <|eot_id|>
  } else if (glm4) {
    apply_added_tokens(d, &bytes, config.added.empty() ? glm4_specials(n) : config.added);
    o.eos = find_token(d, "<|endoftext|>");
    const int32_t gmask = find_token(d, "[gMASK]");
    const int32_t sop = find_token(d, "<sop>");
    if (gmask >= 0 && sop >= 0) o.bos_tokens = {gmask, sop};
    o.add_bos = false;  // the chat template writes [gMASK]<sop>
    add_eog(o.eog, o.eos);
    add_eog(o.eog, find_token(d, "<|user|>"));
    add_eog(o.eog, find_token(d, "<|observation|>"));
  }
  if (!glm4) apply_added_tokens(d, &bytes, config.added);
  if (!config.bos_token.empty()) o.bos = find_token(d, config.bos_token);
  if (!config.eos_token.empty()) o.eos = find_token(d, config.eos_token);
  if (config.add_bos >= 0) o.add_bos = config.add_bos == 1;
  if (config.add_eos >= 0) o.add_eos = config.add_eos == 1;
  add_eog(o.eog, o.eos);
  add_eog_texts(d, o.eog);
  BpeMerges merges;
  merges.from_ranks = true;
  return std::make_unique<BpeTokenizer>(Vocab(std::move(d)), std::move(bytes), merges, std::move(o));
}

std::unique_ptr<Tokenizer> load(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  LOOM_CHECK(!ec && fs::exists(status), "[tokenizer] {}: no such file or folder; pass a tokenizer file (GGUF, "
             "tokenizer.model, tokenizer.json, ...) or a folder holding one",
             path);
  if (fs::is_directory(status)) return load_folder(path);
  const fs::path parent = fs::path(path).parent_path();
  const TokenizerConfig config = read_tokenizer_config(((parent.empty() ? fs::path(".") : parent) /
                                                        "tokenizer_config.json").string());
  return load_file(path, config);
}

}  // namespace loom::tokenizer
