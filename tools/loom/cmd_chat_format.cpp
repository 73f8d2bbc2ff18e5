// loom chat-format: the exact prompt a model's chat template makes of a
// conversation (a JSON file of messages), written to stdout byte for byte.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/engine/session.h"
#include "loom/format/gguf.h"
#include "loom/model/source.h"
#include "loom/tokenizer/chat_template.h"

namespace loom::cli {

namespace {

struct ChatFormatArgs {
  std::string model, messages, chat_template;
  bool no_generation_prompt = false;
};

std::string read_messages_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "[cli] cannot read the messages file {}: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void chat_format(const ChatFormatArgs& a) {
  const std::string path = a.model.empty() ? default_model_path() : a.model;
  const auto messages = tokenizer::parse_chat_messages(read_messages_file(a.messages), a.messages);

  // Only the metadata and the special-token texts are needed, not the weights.
  format::Metadata metadata;
  std::string folder;
  tokenizer::ChatContext ctx;
  if (std::filesystem::is_directory(path)) {
    folder = path;  // a Hugging Face folder: tokenizer_config.json has the template and the tokens
    ctx = tokenizer::chat_context_from_config(folder);
  } else {
    auto file = format::MappedFile::open(path);
    if (format::GgufFile::has_magic(*file)) {
      metadata = format::GgufFile::parse(file)->metadata();
      ctx = tokenizer::chat_context(metadata);
    } else {
      const auto source = model::ModelSource::open(path);
      metadata = source->metadata();
      ctx = tokenizer::chat_context(*engine::load_tokenizer(*source, ""));
    }
  }
  const tokenizer::ChatTemplate tmpl = tokenizer::for_model(metadata, folder, a.chat_template);
  std::fprintf(stderr, "chat template: %s\n", tmpl.origin().c_str());
  const std::string prompt = tmpl.render(messages, !a.no_generation_prompt, ctx);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_chat_format(CLI::App& app) {
  auto a = std::make_shared<ChatFormatArgs>();
  CLI::App* c = app.add_subcommand(
      "chat-format",
      "Print the prompt a model's chat template makes of a conversation: exactly the template's output, with no "
      "newline added (a note on which template was used goes to stderr)");
  c->add_option("-m,--model", a->model,
                "Model: GGUF file, llama2.c .bin, or Hugging Face folder with tokenizer_config.json (default: the "
                "built-in model)");
  c->add_option("--messages", a->messages,
                "JSON file: an array of {\"role\", \"content\"} objects, or an object with \"messages\"")
      ->required();
  c->add_option("--chat-template", a->chat_template,
                "Use this template instead of the model's: a built-in name (llama2, llama3, chatml, qwen2, glm4, "
                "chatglm3, telechat2, mistral, raw), a Jinja file, or a tokenizer_config.json");
  c->add_flag("--no-generation-prompt", a->no_generation_prompt,
              "Do not append the text that opens the assistant's turn");
  c->callback([a] { chat_format(*a); });
}

}  // namespace loom::cli
