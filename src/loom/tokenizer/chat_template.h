// Chat templates: a conversation (system prompt, user and assistant turns)
// -> the exact prompt text the model was trained on. A model's own Jinja
// template (GGUF tokenizer.chat_template, or chat_template in a Hugging Face
// tokenizer_config.json) runs on loom's interpreter (jinja/template.h);
// otherwise a built-in format of the model's family is used: llama2, llama3,
// chatml, qwen2, glm4, chatglm3, telechat2, mistral, or raw (no markup).
//
//   ChatTemplate t = tokenizer::for_model(gguf->metadata(), "");
//   std::string prompt = t.render({{"system", "Be brief."}, {"user", "Hi"}}, true, chat_context(*tok));
//   // then encode with parse_special, generate, stop at t.stop_texts() or an EOG token
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom::format {
class Metadata;
}

namespace loom::tokenizer {

class Tokenizer;
struct BuiltinFormat;
namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// The special-token text a template may use (Jinja: bos_token, eos_token).
struct ChatContext {
  std::string bos_token;
  std::string eos_token;
};

class ChatTemplate {
 public:
  // A Jinja template; throws a loom::Error naming `name`, line and column on a syntax error.
  static ChatTemplate from_jinja(std::string_view source, std::string name = "jinja");
  // A built-in format by name; throws listing the known names.
  static ChatTemplate builtin(std::string_view family);
  static std::vector<std::string> builtin_names();

  // The prompt for `messages`; with add_generation_prompt the text that opens
  // the assistant's turn is appended. Errors the template raises (e.g. roles
  // out of order) are loom::Errors.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt, const ChatContext& ctx) const;

  const std::string& name() const { return name_; }          // "llama3", "tokenizer.chat_template", a file name
  const std::string& origin() const { return origin_; }      // why this template was chosen (for messages)
  bool is_raw() const { return raw_; }
  // Text that ends the assistant's turn ("<|im_end|>", "<|eot_id|>", "<|user|>"
  // for GLM): generation stops there as well as at end-of-generation tokens.
  const std::vector<std::string>& stop_texts() const { return stop_texts_; }

 private:
  friend ChatTemplate for_model(const format::Metadata&, const std::string&, std::string_view);
  std::shared_ptr<const jinja::Template> jinja_;
  const BuiltinFormat* builtin_ = nullptr;
  std::string name_;
  std::string origin_;
  bool raw_ = false;
  std::vector<std::string> stop_texts_;
};

// The template for a model:
//  1. `override_name_or_file` if not empty: a built-in name, a Jinja file, or
//     a tokenizer_config.json / chat_template.json holding "chat_template";
//  2. the model's own template: metadata key tokenizer.chat_template, else in
//     `folder` (when not empty) chat_template.jinja, tokenizer_config.json or
//     chat_template.json;
//  3. the built-in format of the family guessed by guess_chat_family();
//  4. raw.
ChatTemplate for_model(const format::Metadata& metadata, const std::string& folder,
                       std::string_view override_name_or_file = {});

// The built-in format name for a model without a template ("" if unknown),
// from general.architecture, the vocabulary's marker tokens, general.name and
// the Hugging Face tokenizer_class. `why` (if given) receives the reason.
std::string guess_chat_family(const format::Metadata& metadata, std::string_view tokenizer_class = {},
                              std::string* why = nullptr);

// bos_token / eos_token as text: of a tokenizer, of GGUF tokenizer.ggml.*
// metadata, or of FOLDER/tokenizer_config.json.
ChatContext chat_context(const Tokenizer& tok);
ChatContext chat_context(const format::Metadata& metadata);
ChatContext chat_context_from_config(const std::string& folder);

// A conversation in JSON: an array of {"role", "content"} objects, or an
// object whose "messages" is one. `source` names the file in errors.
std::vector<ChatMessage> parse_chat_messages(std::string_view json, const std::string& source);

}  // namespace loom::tokenizer
