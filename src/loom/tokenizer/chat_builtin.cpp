// Each family's official chat template, rendered in C++. Every function
// follows its Jinja original line by line (quoted in the comments), so that
// the two render the same string; tests/tokenizer/chat_template_test.cpp
// checks both against hand-written expectations.
#include "loom/tokenizer/chat_builtin.h"

#include <algorithm>

#include "loom/core/error.h"
#include "loom/tokenizer/jinja/text.h"

namespace loom::tokenizer {

namespace {

using Messages = std::vector<ChatMessage>;

std::string strip(const std::string& s) { return jinja::text::strip(s); }

// Llama 2 chat (meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json): an
// optional system message goes inside the first user turn between <<SYS>>
// markers; every user turn starts with BOS, every answer ends with EOS;
// `content.strip()` on both. The template has no generation prompt: the
// prompt ends with " [/INST]" either way.
std::string llama2(const Messages& m, bool, const ChatContext& ctx) {
  const bool has_system = !m.empty() && m[0].role == "system";
  std::string out;
  for (size_t i = has_system ? 1 : 0, k = 0; i < m.size(); ++i, ++k) {
    if ((m[i].role == "user") != (k % 2 == 0))
      fail("[tokenizer] chat format 'llama2': Conversation roles must alternate user/assistant/user/assistant/... "
           "(message {} is '{}')",
           i + 1, m[i].role);
    std::string content = m[i].content;
    if (k == 0 && has_system) content = "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + content;
    if (m[i].role == "user") {
      out += ctx.bos_token + "[INST] " + strip(content) + " [/INST]";
    } else if (m[i].role == "assistant") {
      out += " " + strip(content) + " " + ctx.eos_token;
    }
  }
  return out;
}

// Llama 3 instruct (meta-llama/Meta-Llama-3-8B-Instruct): a header per turn,
// `content | trim`, <|eot_id|> after each; BOS before the first.
std::string llama3(const Messages& m, bool gen, const ChatContext& ctx) {
  std::string out;
  for (size_t i = 0; i < m.size(); ++i) {
    if (i == 0) out += ctx.bos_token;
    out += "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n" + strip(m[i].content) + "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" per message.
std::string chatml(const Messages& m, bool gen, const ChatContext&) {
  std::string out;
  for (const auto& msg : m) out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// Qwen2 instruct (Qwen/Qwen2-7B-Instruct): ChatML, with a default system
// message when the conversation does not start with one.
std::string qwen2(const Messages& m, bool gen, const ChatContext& ctx) {
  std::string out;
  if (!m.empty() && m[0].role != "system") out = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
  return out + chatml(m, gen, ctx);
}

// GLM-4 (THUDM/glm-4-9b-chat, tokenizer_config.json; the copy in
// shared/data/tokenizers/glm4): "[gMASK]<sop>", then per message with
// content "<|{role}|>{metadata}\n{content}" (no metadata here), then
// "<|assistant|>". Messages with empty content are skipped.
std::string glm4(const Messages& m, bool gen, const ChatContext&) {
  std::string out = "[gMASK]<sop>";
  for (const auto& msg : m)
    if (!msg.content.empty()) out += "<|" + msg.role + "|>\n" + msg.content;
  if (gen) out += "<|assistant|>";
  return out;
}

// ChatGLM3 (THUDM/chatglm3-6b) builds its prompt in Python, not Jinja:
// tokenization_chatglm.py's build_chat_input() emits [gMASK] sop, then per
// message get_command("<|role|>") + encode(f"{metadata}\n") + encode(content),
// then <|assistant|>. Each encode() is a separate SentencePiece call with its
// own dummy-prefix space, so as text a turn is "<|role|>\n content" -- the
// same text llama.cpp uses for ChatGLM3 -- which loom's SentencePiece encoder
// (dummy prefix after every special token, as in llama.cpp) turns back into
// exactly those ids.
std::string chatglm3(const Messages& m, bool gen, const ChatContext&) {
  std::string out = "[gMASK]sop";
  for (const auto& msg : m) {
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "observation")
      fail("[tokenizer] chat format 'chatglm3': role '{}' is not one of system, user, assistant, observation", msg.role);
    out += "<|" + msg.role + "|>\n " + msg.content;
  }
  if (gen) out += "<|assistant|>";
  return out;
}

// TeleChat2 (Tele-AI/TeleChat2-7B tokenizer_config.json chat_template; the
// tokenizer_config.json of TeleChat2-115B in shared/data carries none. The
// same template is quoted verbatim by mindspore-lab/mindformers' TeleChat2
// tests). Without tools: "<_system>" + the system message (or the default
// one) + "\n", then "<_user>" + content per user turn, "<_bot>" + content +
// "<_end>\n" per answer, tool results wrapped in <tool_response>, and "<_bot>"
// as the generation prompt.
std::string telechat2(const Messages& m, bool gen, const ChatContext&) {
  static const std::string kDefaultSystem =
      "你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院（TeleAI）"
      "研发的人工智能助手。";
  std::string out = "<_system>" + (!m.empty() && m[0].role == "system" ? m[0].content : kDefaultSystem) + "\n";
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user") {
      out += "<_user>" + msg.content;
    } else if (msg.role == "bot" || msg.role == "assistant") {
      out += "<_bot>" + msg.content + "<_end>\n";
    } else if (msg.role == "tool") {
      out += i == 0 || m[i - 1].role != "tool" ? "<_user><tool_response>\n" : "\n<tool_response>\n";
      out += msg.content + "\n</tool_response>";
    }
  }
  if (gen) out += "<_bot>";
  return out;
}

// Mistral instruct v0.3 (mistralai/Mistral-7B-Instruct-v0.3,
// tokenizer_config.json): BOS, "[INST] {user}[/INST]" and " {answer|trim}</s>";
// the system message is put in front of the last user message. No
// generation prompt.
std::string mistral(const Messages& m, bool, const ChatContext& ctx) {
  const bool has_system = !m.empty() && m[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  for (size_t i = first, k = 0; i < m.size(); ++i) {
    if (m[i].role == "tool" || m[i].role == "tool_results") continue;
    if ((m[i].role == "user") != (k % 2 == 0))
      fail("[tokenizer] chat format 'mistral': After the optional system message, conversation roles must alternate "
           "user/assistant/user/assistant/... (message {} is '{}')",
           i + 1, m[i].role);
    ++k;
  }
  std::string out = ctx.bos_token;
  for (size_t i = first; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user") {
      if (i + 1 == m.size() && has_system) {
        out += "[INST] " + m[0].content + "\n\n" + msg.content + "[/INST]";
      } else {
        out += "[INST] " + msg.content + "[/INST]";
      }
    } else if (msg.role == "assistant") {
      out += " " + strip(msg.content) + ctx.eos_token;
    } else if (msg.role == "tool" || msg.role == "tool_results") {
      fail("[tokenizer] chat format 'mistral': Tool call IDs should be alphanumeric strings with length 9! (tool "
           "messages need a tool_call_id, which plain chat messages do not carry)");
    } else {
      fail("[tokenizer] chat format 'mistral': Only user and assistant roles are supported, with the exception of an "
           "initial optional system message! (message {} is '{}')",
           i + 1, msg.role);
    }
  }
  return out;
}

// No markup at all: the messages' text one after another (for models with
// no chat format, such as the story model loom ships as its default).
std::string raw(const Messages& m, bool, const ChatContext&) {
  std::string out;
  for (const auto& msg : m) out += msg.content;
  return out;
}

}  // namespace

const std::vector<BuiltinFormat>& builtin_formats() {
  static const std::vector<BuiltinFormat> formats = {
      {"llama2", llama2, {}, "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json"},
      {"llama3", llama3, {"<|eot_id|>"}, "meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json"},
      {"chatml", chatml, {"<|im_end|>"}, "ChatML"},
      {"qwen2", qwen2, {"<|im_end|>"}, "Qwen/Qwen2-7B-Instruct tokenizer_config.json"},
      {"glm4", glm4, {"<|user|>", "<|observation|>"}, "THUDM/glm-4-9b-chat tokenizer_config.json"},
      {"chatglm3", chatglm3, {"<|user|>", "<|observation|>"}, "THUDM/chatglm3-6b tokenization_chatglm.py"},
      {"telechat2", telechat2, {"<_end>"}, "Tele-AI/TeleChat2-7B tokenizer_config.json"},
      {"mistral", mistral, {}, "mistralai/Mistral-7B-Instruct-v0.3 tokenizer_config.json"},
      {"raw", raw, {}, "no chat format: the text as it is"},
  };
  return formats;
}

const BuiltinFormat* find_builtin_format(std::string_view name) {
  const auto& f = builtin_formats();
  auto it = std::find_if(f.begin(), f.end(), [&](const BuiltinFormat& b) { return b.name == name; });
  return it == f.end() ? nullptr : &*it;
}

}  // namespace loom::tokenizer
