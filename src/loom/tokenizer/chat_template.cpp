#include "loom/tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "loom/core/error.h"
#include "loom/format/metadata.h"
#include "loom/tokenizer/chat_builtin.h"
#include "loom/tokenizer/jinja/template.h"
#include "loom/tokenizer/jinja/text.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tokenizer {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "[tokenizer] cannot read {}: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message ends with the byte offset; say which file it is about.
    fail("[tokenizer] {}: not valid JSON: {}", source, e.what());
  }
}

// The end-of-turn markers a Jinja template writes, which the model then
// produces to end its own turn. GLM templates write "<|{role}|>", so their
// markers are recognised by "[gMASK]".
std::vector<std::string> stop_texts_of(std::string_view source) {
  static constexpr std::string_view kMarkers[] = {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>",
                                                  "<end_of_turn>", "<|END_OF_TURN_TOKEN|>", "<_end>"};
  std::vector<std::string> out;
  for (std::string_view m : kMarkers)
    if (source.find(m) != std::string_view::npos) out.emplace_back(m);
  if (source.find("[gMASK]") != std::string_view::npos) {
    out.emplace_back("<|user|>");
    out.emplace_back("<|observation|>");
  }
  return out;
}

// HF's chat_template is a string or a list of {"name", "template"} (the one
// named "default" is the default).
std::string template_of(const json& value, const std::string& source) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    const json* first = nullptr;
    for (const json& t : value) {
      if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
      if (!first) first = &t;
      if (t.contains("name") && t["name"] == "default") return t["template"].get<std::string>();
    }
    if (first) return (*first)["template"].get<std::string>();
  }
  fail("[tokenizer] {}: \"chat_template\" must be a string or a list of {{\"name\", \"template\"}} objects", source);
}

// A Jinja template from a file: a *.json file (tokenizer_config.json,
// chat_template.json) holds it under "chat_template" (empty if absent); any
// other file is the template itself.
std::string template_from_file(const std::string& path) {
  const std::string text = read_text(path);
  if (!path.ends_with(".json")) return text;
  const json j = parse_json(text, path);
  if (!j.is_object() || !j.contains("chat_template")) return {};
  return template_of(j["chat_template"], path);
}

json read_config(const std::string& folder) {
  const fs::path p = fs::path(folder) / "tokenizer_config.json";
  if (!fs::is_regular_file(p)) return json::object();
  json j = parse_json(read_text(p.string()), p.string());
  return j.is_object() ? j : json::object();
}

// A special token in tokenizer_config.json: "text", {"content": "text"} or null.
std::string token_text(const json& config, const char* key) {
  if (!config.contains(key)) return {};
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return {};
}

bool has_token(const std::vector<std::string>* tokens, std::string_view text) {
  return tokens && std::find(tokens->begin(), tokens->end(), text) != tokens->end();
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(std::string_view source, std::string name) {
  ChatTemplate t;
  t.jinja_ = std::make_shared<const jinja::Template>(jinja::Template::parse(source, name));
  t.name_ = std::move(name);
  t.origin_ = t.name_;
  t.stop_texts_ = stop_texts_of(source);
  return t;
}

ChatTemplate ChatTemplate::builtin(std::string_view family) {
  const BuiltinFormat* f = find_builtin_format(family);
  if (!f) {
    std::string known;
    for (const auto& b : builtin_formats()) known += (known.empty() ? "" : ", ") + std::string(b.name);
    fail("[tokenizer] unknown chat format '{}'; the built-in ones are: {}", family, known);
  }
  ChatTemplate t;
  t.builtin_ = f;
  t.name_ = std::string(f->name);
  t.origin_ = fmt::format("built-in '{}' ({})", f->name, f->source);
  t.raw_ = f->name == "raw";
  t.stop_texts_ = f->stop_texts;
  return t;
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> out;
  for (const auto& b : builtin_formats()) out.emplace_back(b.name);
  return out;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 const ChatContext& ctx) const {
  if (builtin_) return builtin_->render(messages, add_generation_prompt, ctx);
  LOOM_CHECK(jinja_, "[tokenizer] render: this ChatTemplate was never set up; use for_model(), builtin() or from_jinja()");
  // The variables transformers' apply_chat_template passes.
  jinja::List list;
  for (const auto& m : messages) {
    jinja::Dict d;
    d.set("role", jinja::Value(m.role));
    d.set("content", jinja::Value(m.content));
    list.push_back(jinja::Value::dict(std::move(d)));
  }
  jinja::Dict vars;
  vars.set("messages", jinja::Value::list(std::move(list)));
  vars.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  vars.set("bos_token", jinja::Value(ctx.bos_token));
  vars.set("eos_token", jinja::Value(ctx.eos_token));
  vars.set("tools", jinja::Value::none());
  vars.set("documents", jinja::Value::none());
  return jinja_->render(vars);
}

std::string guess_chat_family(const format::Metadata& m, std::string_view tokenizer_class, std::string* why) {
  auto say = [&](std::string family, std::string reason) {
    if (why) *why = std::move(reason);
    return family;
  };
  const std::string arch = m.get_string("general.architecture", "");
  const format::GgufValue* tv = m.find("tokenizer.ggml.tokens");
  const std::vector<std::string>* tokens =
      tv && tv->is_array() && tv->element_type() == format::GgufType::STRING ? &tv->strings() : nullptr;
  const std::string name = jinja::text::lower(m.get_string("general.name", ""));

  if (arch == "qwen2" || arch == "qwen2moe" || arch == "qwen" || arch == "qwen3" || arch == "qwen3moe")
    return say("qwen2", "architecture '" + arch + "'");
  if (arch == "glm4" || (arch == "chatglm" && (has_token(tokens, "<sop>") || m.get_string("tokenizer.ggml.pre", "") == "chatglm-bpe")))
    return say("glm4", "architecture '" + arch + "' with GLM-4's vocabulary");
  if (arch == "chatglm") return say("chatglm3", "architecture 'chatglm'");
  if (arch.starts_with("telechat")) return say("telechat2", "architecture '" + arch + "'");
  if (has_token(tokens, "<|eot_id|>") && has_token(tokens, "<|start_header_id|>"))
    return say("llama3", "the vocabulary has <|start_header_id|> and <|eot_id|>");
  if (has_token(tokens, "<|im_start|>") && has_token(tokens, "<|im_end|>"))
    return say("chatml", "the vocabulary has <|im_start|> and <|im_end|>");
  if (has_token(tokens, "[INST]")) return say("mistral", "the vocabulary has [INST]");
  if (has_token(tokens, "<_user>") && has_token(tokens, "<_bot>")) return say("telechat2", "the vocabulary has <_user> and <_bot>");
  const std::string cls(tokenizer_class);
  if (cls.starts_with("Qwen2Tokenizer")) return say("qwen2", "tokenizer_class " + cls);
  if (cls == "ChatGLM4Tokenizer") return say("glm4", "tokenizer_class " + cls);
  if (cls == "ChatGLMTokenizer") return say("chatglm3", "tokenizer_class " + cls);
  if (cls == "TelechatTokenizer") return say("telechat2", "tokenizer_class " + cls);
  if (name.find("mistral") != std::string::npos || name.find("mixtral") != std::string::npos)
    return say("mistral", "the model is named '" + m.get_string("general.name", "") + "'");
  const bool llama2 = name.find("llama-2") != std::string::npos || name.find("llama 2") != std::string::npos ||
                      name.find("llama2") != std::string::npos;
  if (llama2 && name.find("chat") != std::string::npos)
    return say("llama2", "the model is named '" + m.get_string("general.name", "") + "'");
  return say("", "no chat template and nothing that names a chat format");
}

ChatTemplate for_model(const format::Metadata& metadata, const std::string& folder, std::string_view override_name) {
  if (!override_name.empty()) {
    const std::string o(override_name);
    if (fs::is_regular_file(o)) {
      const std::string source = template_from_file(o);
      LOOM_CHECK(!source.empty(), "[tokenizer] {}: no \"chat_template\" in this file", o);
      ChatTemplate t = ChatTemplate::from_jinja(source, o);
      t.origin_ = "the template in " + o;
      return t;
    }
    if (find_builtin_format(o)) return ChatTemplate::builtin(o);
    std::string known;
    for (const auto& n : ChatTemplate::builtin_names()) known += (known.empty() ? "" : ", ") + n;
    fail("[tokenizer] chat template '{}' is neither a file nor a built-in format (built-in: {})", o, known);
  }

  auto with_hint = [](const std::string& where, std::string_view source) {
    try {
      ChatTemplate t = ChatTemplate::from_jinja(source, where);
      t.origin_ = "the model's own template (" + where + ")";
      return t;
    } catch (const Error& e) {
      fail("{}; pass --chat-template NAME to use a built-in format instead", e.what());
    }
  };
  if (const format::GgufValue* v = metadata.find("tokenizer.chat_template"); v && v->is_string() && !v->as_string().empty())
    return with_hint("tokenizer.chat_template", v->as_string());

  std::string tokenizer_class;
  if (!folder.empty()) {
    const fs::path dir(folder);
    if (fs::is_regular_file(dir / "chat_template.jinja"))
      return with_hint((dir / "chat_template.jinja").string(), read_text((dir / "chat_template.jinja").string()));
    const json config = read_config(folder);
    if (config.contains("chat_template") && !config["chat_template"].is_null()) {
      const std::string where = (dir / "tokenizer_config.json").string();
      return with_hint(where, template_of(config["chat_template"], where));
    }
    if (fs::is_regular_file(dir / "chat_template.json")) {
      const std::string where = (dir / "chat_template.json").string();
      const std::string source = template_from_file(where);
      if (!source.empty()) return with_hint(where, source);
    }
    if (config.contains("tokenizer_class") && config["tokenizer_class"].is_string())
      tokenizer_class = config["tokenizer_class"].get<std::string>();
  }

  std::string why;
  const std::string family = guess_chat_family(metadata, tokenizer_class, &why);
  ChatTemplate t = ChatTemplate::builtin(family.empty() ? "raw" : family);
  t.origin_ = family.empty() ? "raw (" + why + ")" : fmt::format("built-in '{}', guessed from {}", family, why);
  return t;
}

ChatContext chat_context(const Tokenizer& tok) {
  ChatContext c;
  if (tok.bos() >= 0) c.bos_token = tok.token_bytes(tok.bos(), /*special=*/true);
  if (tok.eos() >= 0) c.eos_token = tok.token_bytes(tok.eos(), /*special=*/true);
  return c;
}

ChatContext chat_context(const format::Metadata& m) {
  ChatContext c;
  const format::GgufValue* tv = m.find("tokenizer.ggml.tokens");
  if (!tv || !tv->is_array() || tv->element_type() != format::GgufType::STRING) return c;
  const std::vector<std::string>& tokens = tv->strings();
  const bool spm = m.get_string("tokenizer.ggml.model", "") == "llama";
  auto text = [&](const char* key, int64_t fallback) {
    const int64_t id = m.get_int(key, fallback);
    return id >= 0 && id < int64_t(tokens.size()) ? tokens[size_t(id)] : std::string();
  };
  c.bos_token = text("tokenizer.ggml.bos_token_id", spm ? 1 : -1);
  c.eos_token = text("tokenizer.ggml.eos_token_id", spm ? 2 : -1);
  return c;
}

ChatContext chat_context_from_config(const std::string& folder) {
  const json config = read_config(folder);
  return ChatContext{token_text(config, "bos_token"), token_text(config, "eos_token")};
}

std::vector<ChatMessage> parse_chat_messages(std::string_view text, const std::string& source) {
  const json j = parse_json(text, source);
  const json* list = &j;
  if (j.is_object()) {
    LOOM_CHECK(j.contains("messages"), "[tokenizer] {}: expected a JSON array of messages or an object with \"messages\"",
               source);
    list = &j["messages"];
  }
  LOOM_CHECK(list->is_array(), "[tokenizer] {}: \"messages\" must be a JSON array of {{\"role\", \"content\"}} objects",
             source);
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& m = (*list)[i];
    LOOM_CHECK(m.is_object(), "[tokenizer] {}: message {} is not a JSON object", source, i + 1);
    LOOM_CHECK(m.contains("role") && m["role"].is_string(), "[tokenizer] {}: message {} has no string \"role\"", source,
               i + 1);
    ChatMessage msg{m["role"].get<std::string>(), {}};
    if (m.contains("content") && !m["content"].is_null()) {
      LOOM_CHECK(m["content"].is_string(), "[tokenizer] {}: message {} (\"{}\"): \"content\" must be a string", source,
                 i + 1, msg.role);
      msg.content = m["content"].get<std::string>();
    }
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace loom::tokenizer
