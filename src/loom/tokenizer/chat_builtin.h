// The built-in chat formats: each family's official template written out in
// C++, used when a model ships no Jinja template of its own. Internal to the
// tokenizer room; ChatTemplate::builtin() is the public entry.
//
//   const BuiltinFormat* f = find_builtin_format("llama3");
//   std::string prompt = f->render(messages, /*add_generation_prompt=*/true, ctx);
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "loom/tokenizer/chat_template.h"

namespace loom::tokenizer {

struct BuiltinFormat {
  std::string_view name;
  std::string (*render)(const std::vector<ChatMessage>& messages, bool add_generation_prompt, const ChatContext& ctx);
  std::vector<std::string> stop_texts;  // text that ends the assistant's turn
  std::string_view source;              // where the format comes from
};

const std::vector<BuiltinFormat>& builtin_formats();
const BuiltinFormat* find_builtin_format(std::string_view name);  // nullptr if unknown

}  // namespace loom::tokenizer
