// Hugging Face tokenizer files: tokenizer.json (the "fast" tokenizer),
// vocab.json + merges.txt (the "slow" byte-level BPE one) and
// tokenizer_config.json (added tokens, BOS/EOS flags). All are untrusted
// input: malformed JSON or a missing field is an error naming the file.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "loom/core/error.h"
#include "loom/tokenizer/bpe.h"
#include "loom/tokenizer/byte_level.h"
#include "loom/tokenizer/sources.h"

namespace loom::tokenizer {

namespace {

using nlohmann::json;

json parse_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("[tokenizer] {}: not valid JSON: {}", path, e.what());
  }
}

// A token given as a string or as {"content": ...}; "" if absent or null.
std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

int32_t checked_id(const json& v, const std::string& path, std::string_view what) {
  LOOM_CHECK(v.is_number_integer(), "[tokenizer] {}: {} must be an integer id, got {}", path, what, v.dump());
  const auto id = v.get<int64_t>();
  // Bounded so that a bogus id cannot make loom allocate a huge vocabulary.
  LOOM_CHECK(id >= 0 && id < (int64_t{1} << 24), "[tokenizer] {}: {} = {} is not a plausible token id", path, what, id);
  return static_cast<int32_t>(id);
}

// Token table from a {"piece": id} object of byte-level pieces.
void read_vocab_object(const json& vocab, const std::string& path, VocabData& data, std::vector<std::string>& bytes) {
  LOOM_CHECK(vocab.is_object() && !vocab.empty(), "[tokenizer] {}: the vocabulary must be a non-empty object of "
             "\"piece\": id", path);
  int32_t n = 0;
  for (const auto& [piece, id] : vocab.items())
    n = std::max(n, checked_id(id, path, "vocabulary id of '" + piece + "'") + 1);
  data.pieces.assign(static_cast<size_t>(n), std::string());
  data.types.assign(static_cast<size_t>(n), TokenType::Unused);
  bytes.assign(static_cast<size_t>(n), std::string());
  for (const auto& [piece, id_value] : vocab.items()) {
    const auto id = static_cast<size_t>(id_value.get<int64_t>());
    LOOM_CHECK(data.types[id] == TokenType::Unused, "[tokenizer] {}: id {} is used by two pieces", path, id);
    data.pieces[id] = piece;
    data.types[id] = TokenType::Normal;
    if (!byte_level::to_bytes(piece, bytes[id])) bytes[id] = piece;
  }
}

BpeMerges read_merge_list(const json& merges, const std::string& path) {
  LOOM_CHECK(merges.is_array(), "[tokenizer] {}: \"merges\" must be an array", path);
  BpeMerges m;
  m.pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& item = merges[i];
    std::string left, right;
    if (item.is_string()) {
      const std::string s = item.get<std::string>();
      const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      LOOM_CHECK(space != std::string::npos, "[tokenizer] {}: merge {} ('{}') is not 'left right'", path, i, s);
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else {
      LOOM_CHECK(item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_string(),
                 "[tokenizer] {}: merge {} must be \"left right\" or [left, right], got {}", path, i, item.dump());
      left = item[0].get<std::string>();
      right = item[1].get<std::string>();
    }
    std::pair<std::string, std::string> pair;
    if (byte_level::to_bytes(left, pair.first) && byte_level::to_bytes(right, pair.second))
      m.pairs.push_back(std::move(pair));
  }
  return m;
}

// BOS/EOS and end-of-generation from the added tokens and the config.
std::unique_ptr<Tokenizer> finish(VocabData data, std::vector<std::string> bytes, const BpeMerges& merges,
                                  BpeOptions o, const TokenizerConfig& config, bool default_add_bos) {
  apply_added_tokens(data, &bytes, config.added);
  if (!config.bos_token.empty()) o.bos = find_token(data, config.bos_token);
  if (!config.eos_token.empty()) o.eos = find_token(data, config.eos_token);
  o.add_bos = config.add_bos >= 0 ? config.add_bos == 1 : default_add_bos;
  o.add_eos = config.add_eos == 1;
  if (o.eos >= 0) o.eog.push_back(o.eos);
  for (size_t id = 0; id < data.pieces.size(); ++id) {
    const auto i = static_cast<int32_t>(id);
    if (data.types[id] == TokenType::Control && is_eog_text(data.pieces[id]) &&
        std::find(o.eog.begin(), o.eog.end(), i) == o.eog.end())
      o.eog.push_back(i);
  }
  return std::make_unique<BpeTokenizer>(Vocab(std::move(data)), std::move(bytes), merges, std::move(o));
}

// The pre-tokenizer of a tokenizer.json: ByteLevel alone (GPT-2's regex), or
// a Sequence of Split(regex, Isolated) steps and a ByteLevel without regex.
void read_pre_tokenizer(const json& pre, const std::string& path, PreTokenizerSpec& spec) {
  const auto unsupported = [&](const json& p) {
    fail("[tokenizer] {}: pre-tokenizer {} is not supported (loom reads byte-level BPE: ByteLevel and Split with "
         "\"Isolated\" behaviour)",
         path, p.dump().substr(0, 200));
  };
  LOOM_CHECK(pre.is_object() && pre.contains("type") && pre["type"].is_string(),
             "[tokenizer] {}: a byte-level BPE tokenizer.json needs a \"pre_tokenizer\" object with a \"type\"", path);
  const std::string type = pre["type"].get<std::string>();
  if (type == "Sequence") {
    LOOM_CHECK(pre.contains("pretokenizers") && pre["pretokenizers"].is_array(),
               "[tokenizer] {}: a Sequence pre-tokenizer needs \"pretokenizers\"", path);
    for (const json& p : pre["pretokenizers"]) read_pre_tokenizer(p, path, spec);
    return;
  }
  if (type == "ByteLevel") {
    if (pre.value("add_prefix_space", false)) unsupported(pre);
    if (pre.value("use_regex", true)) spec.patterns.push_back(patterns::kGpt2);
    return;
  }
  if (type == "Split") {
    const json& pattern = pre.contains("pattern") ? pre["pattern"] : json();
    if (pre.value("behavior", std::string()) != "Isolated" || pre.value("invert", false)) unsupported(pre);
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      spec.patterns.push_back(pattern["Regex"].get<std::string>());
      return;
    }
    unsupported(pre);
  }
  unsupported(pre);
}

void read_normalizer(const json& norm, const std::string& path, PreTokenizerSpec& spec) {
  if (norm.is_null()) return;
  const std::string type = norm.is_object() ? norm.value("type", std::string()) : std::string();
  if (type == "NFC") {
    spec.nfc = true;
    return;
  }
  if (type == "Sequence" && norm.contains("normalizers") && norm["normalizers"].is_array()) {
    for (const json& n : norm["normalizers"]) read_normalizer(n, path, spec);
    return;
  }
  fail("[tokenizer] {}: normalizer {} is not supported (loom reads byte-level BPE with no normalizer or NFC; for a "
       "SentencePiece model use its tokenizer.model)",
       path, norm.dump().substr(0, 200));
}

// True if the post-processor puts a special token before the text.
bool post_processor_adds_bos(const json& post) {
  if (!post.is_object()) return false;
  const std::string type = post.value("type", std::string());
  if (type == "Sequence" && post.contains("processors") && post["processors"].is_array()) {
    for (const json& p : post["processors"])
      if (post_processor_adds_bos(p)) return true;
    return false;
  }
  if (type != "TemplateProcessing" || !post.contains("single") || !post["single"].is_array()) return false;
  const json& single = post["single"];
  return !single.empty() && single[0].is_object() && single[0].contains("SpecialToken");
}

}  // namespace

TokenizerConfig read_tokenizer_config(const std::string& path) {
  TokenizerConfig c;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return c;
  c.found = true;
  c.path = path;
  const json j = parse_json(path);
  LOOM_CHECK(j.is_object(), "[tokenizer] {}: expected a JSON object", path);
  if (j.contains("tokenizer_class") && j["tokenizer_class"].is_string())
    c.tokenizer_class = j["tokenizer_class"].get<std::string>();
  if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) c.add_bos = j["add_bos_token"].get<bool>();
  if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean()) c.add_eos = j["add_eos_token"].get<bool>();
  if (j.contains("bos_token")) c.bos_token = token_content(j["bos_token"]);
  if (j.contains("eos_token")) c.eos_token = token_content(j["eos_token"]);
  if (j.contains("added_tokens_decoder")) {
    const json& added = j["added_tokens_decoder"];
    LOOM_CHECK(added.is_object(), "[tokenizer] {}: \"added_tokens_decoder\" must be an object of id: token", path);
    for (const auto& [key, value] : added.items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      LOOM_CHECK(id >= 0 && id < (int64_t{1} << 24), "[tokenizer] {}: added token id '{}' is not a plausible id", path,
                 key);
      const std::string content = token_content(value);
      LOOM_CHECK(!content.empty(), "[tokenizer] {}: added token {} has no \"content\"", path, key);
      const bool special = !value.is_object() || value.value("special", true);
      c.added.push_back({static_cast<int32_t>(id), content, special});
    }
  }
  return c;
}

std::unique_ptr<Tokenizer> from_hf_tokenizer_json(const std::string& path, const TokenizerConfig& config) {
  const json j = parse_json(path);
  LOOM_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(),
             "[tokenizer] {}: no \"model\" object; is this a Hugging Face tokenizer.json?", path);
  const json& model = j["model"];
  const std::string type = model.value("type", std::string("BPE"));
  LOOM_CHECK(type == "BPE",
             "[tokenizer] {}: model type '{}' is not supported (loom reads byte-level BPE tokenizer.json; for a "
             "SentencePiece model use its tokenizer.model)",
             path, type);
  LOOM_CHECK(model.contains("vocab") && model.contains("merges"), "[tokenizer] {}: the BPE model needs \"vocab\" and "
             "\"merges\"", path);

  VocabData data;
  data.source = path;
  std::vector<std::string> bytes;
  read_vocab_object(model["vocab"], path, data, bytes);
  const BpeMerges merges = read_merge_list(model["merges"], path);

  BpeOptions o;
  read_normalizer(j.contains("normalizer") ? j["normalizer"] : json(), path, o.pre);
  read_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), path, o.pre);
  o.pre.ignore_merges = model.value("ignore_merges", false);

  TokenizerConfig merged = config;
  if (j.contains("added_tokens")) {
    const json& added = j["added_tokens"];
    LOOM_CHECK(added.is_array(), "[tokenizer] {}: \"added_tokens\" must be an array", path);
    for (const json& t : added) {
      LOOM_CHECK(t.is_object() && t.contains("id") && t.contains("content") && t["content"].is_string(),
                 "[tokenizer] {}: an added token needs \"id\" and \"content\", got {}", path, t.dump().substr(0, 200));
      merged.added.insert(merged.added.begin(), {checked_id(t["id"], path, "added token id"),
                                                 t["content"].get<std::string>(), t.value("special", true)});
    }
  }
  const bool post_bos = j.contains("post_processor") && post_processor_adds_bos(j["post_processor"]);
  return finish(std::move(data), std::move(bytes), merges, std::move(o), merged, post_bos);
}

std::unique_ptr<Tokenizer> from_hf_vocab_merges(const std::string& vocab_json, const std::string& merges_txt,
                                                const TokenizerConfig& config) {
  VocabData data;
  data.source = vocab_json;
  std::vector<std::string> bytes;
  read_vocab_object(parse_json(vocab_json), vocab_json, data, bytes);

  const std::string text = read_file(merges_txt);
  BpeMerges merges;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 9) == "#version:")) continue;
    const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string_view::npos;
    LOOM_CHECK(space != std::string_view::npos, "[tokenizer] {}: line {} is not 'left right'", merges_txt, line_no);
    std::pair<std::string, std::string> pair;
    if (byte_level::to_bytes(line.substr(0, space), pair.first) &&
        byte_level::to_bytes(line.substr(space + 1), pair.second))
      merges.pairs.push_back(std::move(pair));
  }

  // The slow tokenizer classes carry their family's regex (and Qwen2's NFC)
  // in code, so the class name picks it.
  BpeOptions o;
  if (config.tokenizer_class.rfind("Qwen2", 0) == 0) {
    o.pre = pre_tokenizer_spec("qwen2");
  } else {
    o.pre = pre_tokenizer_spec("gpt-2");
  }
  return finish(std::move(data), std::move(bytes), merges, std::move(o), config, false);
}

}  // namespace loom::tokenizer
