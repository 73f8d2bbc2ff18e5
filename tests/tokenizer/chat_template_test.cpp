// Every target family's chat format renders a 3-turn conversation with a
// system prompt to exactly the string its official template produces. The
// expected strings are written out by hand from the templates (read the
// template, apply it to kConversation); the templates are the families'
// published ones: from shared/data (Qwen2's, altered upstream to end in
// "template ends here", and GLM-4's), or copied below from the models'
// Hugging Face tokenizer_config.json. Each is rendered through loom's Jinja
// interpreter and, where a built-in format exists, through the built-in too.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/metadata.h"
#include "loom/tokenizer/chat_template.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi there. How can I help?"},
    {"user", "What is 2+2?"},
    {"assistant", "4"},
    {"user", "Thanks, bye."},
};

// meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json "chat_template".
constexpr const char* kLlama2Official = R"TPL({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})TPL";

// meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json "chat_template".
constexpr const char* kLlama3Official = R"TPL({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})TPL";

// mistralai/Mistral-7B-Instruct-v0.3, tokenizer_config.json "chat_template".
constexpr const char* kMistralOfficial = R"TPL({%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
)TPL";

// Tele-AI/TeleChat2-7B, tokenizer_config.json "chat_template" (also quoted
// by mindspore-lab/mindformers' TeleChat2 tests). TeleChat2-115B's
// tokenizer_config.json, the one in shared/data, has none.
constexpr const char* kTeleChat2Official = R"TPL({%- if tools %}
    {%- if messages[0]['role'] == 'system' %}
        {{-'<_system>'+messages[0]['content'] }}
    {%- else %}
        {{- '<_system>'+'你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院（TeleAI）研发的人工智能助手。' }}
    {%- endif %}
    {{- '\n\n# 可用工具\n你可以调用<tools></tools>标签中包含的一个或多个工具来辅助你回答问题,以下是可用工具详情：\n<tools>\n' }}
    {%- for tool in tools %}
        {{- tool | tojson }}
        {{-'\n'}}
    {%- endfor %}
    {{- '</tools>\n\n# 调用方法\n你需要遵循工具的要求，使用json格式返回工具名称及参数，并用<tool_call></tool_call>包含。下方是一个调用模板：\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n' }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<_system>' + messages[0]['content'] + '\n' }}
    {%- else %}
        {{- '<_system>'+'你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院（TeleAI）研发的人工智能助手。\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == 'user') %}
        {{- '<_user>' + message.content }}
    {%- elif message.role == 'bot' or message.role == 'assistant' %}
        {{- '<_bot>' }}
        {%- if message.content %}
            {{- message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {%- if loop.index0 == 0 %}
                {{-'<tool_call>'}}
            {%- else %}
                {{-'\n<tool_call>'}}
            {%- endif %}
            {{- '\n{"name": "' }}{{ tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<_end>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}
            {{- '<_user>'+'<tool_response>\n' }}
        {%- else %}
            {{- '\n<tool_response>\n' }}
        {%- endif %}
        {{- message.content }}
        {{- '\n</tool_response>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<_bot>' }}
{%- endif %})TPL";

const ChatContext kLlamaTokens{"<s>", "</s>"};

std::string error_of(const ChatTemplate& t, const std::vector<ChatMessage>& m, const ChatContext& ctx = kLlamaTokens) {
  try {
    t.render(m, true, ctx);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Both renderings of a family must give `expected`.
void expect_both(const ChatTemplate& jinja, const ChatTemplate& builtin, const std::vector<ChatMessage>& m, bool gen,
                 const ChatContext& ctx, const std::string& expected) {
  EXPECT_EQ(jinja.render(m, gen, ctx), expected) << "through the Jinja template";
  EXPECT_EQ(builtin.render(m, gen, ctx), expected) << "through the built-in '" << builtin.name() << "'";
}

// ---- ChatML / Qwen2 ----

// Qwen2's template (shared/data): per message "<|im_start|>{role}\n{content}<|im_end|>\n",
// then "<|im_start|>assistant\n" with add_generation_prompt, then the literal tail.
const std::string kChatMl =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHello!<|im_end|>\n"
    "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n4<|im_end|>\n"
    "<|im_start|>user\nThanks, bye.<|im_end|>\n";

TEST(ChatTemplate, Qwen2TemplateFromSharedData) {
  LOOM_DATA(config, "tokenizers/qwen2/tokenizer_config.json");
  const std::string folder = config.substr(0, config.rfind('/'));
  const ChatTemplate t = for_model(format::Metadata(), folder);
  EXPECT_EQ(t.render(kConversation, true, {}), kChatMl + "<|im_start|>assistant\ntemplate ends here");
  EXPECT_EQ(t.render(kConversation, false, {}), kChatMl + "template ends here");
  EXPECT_EQ(t.stop_texts(), std::vector<std::string>{"<|im_end|>"});
}

TEST(ChatTemplate, ChatMlAndQwen2BuiltIns) {
  EXPECT_EQ(ChatTemplate::builtin("chatml").render(kConversation, true, {}), kChatMl + "<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate::builtin("qwen2").render(kConversation, false, {}), kChatMl);
  // Qwen2-Instruct adds a default system message when there is none.
  EXPECT_EQ(ChatTemplate::builtin("qwen2").render({{"user", "Hi"}}, true, {}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

// ---- GLM-4 ----

// GLM-4's template (shared/data): "[gMASK]<sop>", per message with content
// "<|{role}|>" + metadata (undefined: empty) + "\n" + content, "<|assistant|>" to close.
const std::string kGlm4 =
    "[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\nHello!<|assistant|>\nHi there. How can I help?"
    "<|user|>\nWhat is 2+2?<|assistant|>\n4<|user|>\nThanks, bye.";

TEST(ChatTemplate, Glm4) {
  LOOM_DATA(config, "tokenizers/glm4/tokenizer_config.json");
  const ChatTemplate jinja = for_model(format::Metadata(), config.substr(0, config.rfind('/')));
  const ChatTemplate builtin = ChatTemplate::builtin("glm4");
  expect_both(jinja, builtin, kConversation, true, {}, kGlm4 + "<|assistant|>");
  expect_both(jinja, builtin, kConversation, false, {}, kGlm4);
  // Messages with empty content are left out.
  expect_both(jinja, builtin, {{"system", ""}, {"user", "Hi"}}, true, {}, "[gMASK]<sop><|user|>\nHi<|assistant|>");
  EXPECT_EQ(jinja.stop_texts(), (std::vector<std::string>{"<|user|>", "<|observation|>"}));
}

// ---- Llama 2 ----

// The system message sits between <<SYS>> markers inside the first [INST];
// every user turn starts with BOS, every answer is " {answer} </s>".
const std::string kLlama2 =
    "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi there. How can I help? </s>"
    "<s>[INST] What is 2+2? [/INST] 4 </s><s>[INST] Thanks, bye. [/INST]";

TEST(ChatTemplate, Llama2) {
  const ChatTemplate jinja = ChatTemplate::from_jinja(kLlama2Official, "llama2.jinja");
  const ChatTemplate builtin = ChatTemplate::builtin("llama2");
  expect_both(jinja, builtin, kConversation, true, kLlamaTokens, kLlama2);
  expect_both(jinja, builtin, kConversation, false, kLlamaTokens, kLlama2);  // the template has no generation prompt
  // content.strip() trims both ends of every turn.
  expect_both(jinja, builtin, {{"user", "  hi \n"}, {"assistant", " yo "}, {"user", "ok"}}, true, kLlamaTokens,
              "<s>[INST] hi [/INST] yo </s><s>[INST] ok [/INST]");
  // Roles out of order: the template's raise_exception, through both paths.
  const std::vector<ChatMessage> bad = {{"user", "a"}, {"user", "b"}};
  EXPECT_NE(error_of(jinja, bad).find("Conversation roles must alternate user/assistant/user/assistant/..."),
            std::string::npos)
      << error_of(jinja, bad);
  EXPECT_NE(error_of(builtin, bad).find("Conversation roles must alternate user/assistant/user/assistant/..."),
            std::string::npos)
      << error_of(builtin, bad);
}

// ---- Llama 3 ----

const std::string kLlama3 =
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nThanks, bye.<|eot_id|>";

TEST(ChatTemplate, Llama3) {
  const ChatContext tokens{"<|begin_of_text|>", "<|eot_id|>"};
  const ChatTemplate jinja = ChatTemplate::from_jinja(kLlama3Official, "llama3.jinja");
  const ChatTemplate builtin = ChatTemplate::builtin("llama3");
  expect_both(jinja, builtin, kConversation, true, tokens,
              kLlama3 + "<|start_header_id|>assistant<|end_header_id|>\n\n");
  expect_both(jinja, builtin, kConversation, false, tokens, kLlama3);
  // `message['content'] | trim`: the filter binds to the content only.
  expect_both(jinja, builtin, {{"user", " padded\n"}}, false, tokens,
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
  EXPECT_EQ(jinja.stop_texts(), std::vector<std::string>{"<|eot_id|>"});
  EXPECT_EQ(builtin.stop_texts(), std::vector<std::string>{"<|eot_id|>"});
}

// ---- Mistral ----

// v0.3: BOS, "[INST] {user}[/INST]" and " {answer}</s>"; the system message
// goes in front of the last user message, separated by a blank line.
const std::string kMistral =
    "<s>[INST] Hello![/INST] Hi there. How can I help?</s>[INST] What is 2+2?[/INST] 4</s>"
    "[INST] You are a helpful assistant.\n\nThanks, bye.[/INST]";

TEST(ChatTemplate, Mistral) {
  const ChatTemplate jinja = ChatTemplate::from_jinja(kMistralOfficial, "mistral.jinja");
  const ChatTemplate builtin = ChatTemplate::builtin("mistral");
  expect_both(jinja, builtin, kConversation, true, kLlamaTokens, kMistral);
  expect_both(jinja, builtin, kConversation, false, kLlamaTokens, kMistral);
  expect_both(jinja, builtin, {{"user", "a"}, {"assistant", " b \n"}, {"user", "c"}}, true, kLlamaTokens,
              "<s>[INST] a[/INST] b</s>[INST] c[/INST]");  // answers are trimmed, user turns are not
  const std::vector<ChatMessage> bad = {{"system", "s"}, {"assistant", "first"}, {"user", "u"}};
  const std::string want = "After the optional system message, conversation roles must alternate";
  EXPECT_NE(error_of(jinja, bad).find(want), std::string::npos) << error_of(jinja, bad);
  EXPECT_NE(error_of(builtin, bad).find(want), std::string::npos) << error_of(builtin, bad);
}

// ---- TeleChat2 ----

const std::string kTeleChat2 =
    "<_system>You are a helpful assistant.\n<_user>Hello!<_bot>Hi there. How can I help?<_end>\n"
    "<_user>What is 2+2?<_bot>4<_end>\n<_user>Thanks, bye.";

TEST(ChatTemplate, TeleChat2) {
  const ChatTemplate jinja = ChatTemplate::from_jinja(kTeleChat2Official, "telechat2.jinja");
  const ChatTemplate builtin = ChatTemplate::builtin("telechat2");
  expect_both(jinja, builtin, kConversation, true, {}, kTeleChat2 + "<_bot>");
  expect_both(jinja, builtin, kConversation, false, {}, kTeleChat2);
  // Without a system message the template writes its default one.
  expect_both(jinja, builtin, {{"user", "你好"}}, true, {},
              "<_system>你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院"
              "（TeleAI）研发的人工智能助手。\n<_user>你好<_bot>");
  EXPECT_EQ(jinja.stop_texts(), std::vector<std::string>{"<_end>"});
}

TEST(ChatTemplate, TeleChat2FolderWithoutTemplateGetsTheBuiltIn) {
  LOOM_DATA(config, "tokenizers/telechat2/tokenizer_config.json");
  const ChatTemplate t = for_model(format::Metadata(), config.substr(0, config.rfind('/')));
  EXPECT_EQ(t.name(), "telechat2");  // from tokenizer_class TelechatTokenizer
  EXPECT_EQ(t.render(kConversation, true, {}), kTeleChat2 + "<_bot>");
}

// ---- ChatGLM3 ----

// build_chat_input(): [gMASK]sop, then "<|role|>" + "\n" + content per
// message (each encoded on its own, so SentencePiece puts a space before
// the newline and before the content: as text, "\n " after the role), then
// "<|assistant|>".
TEST(ChatTemplate, ChatGlm3) {
  const ChatTemplate t = ChatTemplate::builtin("chatglm3");
  const std::string turns =
      "[gMASK]sop<|system|>\n You are a helpful assistant.<|user|>\n Hello!<|assistant|>\n Hi there. How can I help?"
      "<|user|>\n What is 2+2?<|assistant|>\n 4<|user|>\n Thanks, bye.";
  EXPECT_EQ(t.render(kConversation, true, {}), turns + "<|assistant|>");
  EXPECT_EQ(t.render(kConversation, false, {}), turns);
  EXPECT_EQ(t.stop_texts(), (std::vector<std::string>{"<|user|>", "<|observation|>"}));
  EXPECT_NE(error_of(t, {{"narrator", "x"}}).find("role 'narrator'"), std::string::npos);

  LOOM_DATA(config, "tokenizers/chatglm3/tokenizer_config.json");
  EXPECT_EQ(for_model(format::Metadata(), config.substr(0, config.rfind('/'))).name(), "chatglm3");
}

// The text above must tokenize to build_chat_input()'s ids. Reference ids
// for this conversation: li-plus/chatglm.cpp, tests/test_chatglm.cpp
// (ChatGLM3 tokenizer test, computed with THUDM's Python tokenizer).
TEST(ChatTemplate, ChatGlm3PromptTokenizesToTheReferenceIds) {
  LOOM_DATA(model, "tokenizers/chatglm3/tokenizer.model");
  const auto tok = load(model.substr(0, model.rfind('/')));
  const std::string prompt = ChatTemplate::builtin("chatglm3").render(
      {{"user", "你好"},
       {"assistant", "你好👋！我是人工智能助手 ChatGLM3-6B，很高兴见到你，欢迎问我任何问题。"},
       {"user", "晚上睡不着应该怎么办"}},
      true, {});
  const std::vector<int32_t> expected = {
      64790, 64792, 64795, 30910, 13,    36474, 54591, 64796, 30910, 13,    36474, 54591, 243,   162,   148,   142,
      31404, 33030, 34797, 42481, 22011, 10461, 30944, 30966, 30941, 30978, 30949, 31123, 48895, 35214, 54622, 31123,
      32616, 39905, 31901, 31639, 31155, 64795, 30910, 13,    30910, 32820, 54266, 31876, 35153, 64796};
  EXPECT_EQ(tok->encode(prompt, {.parse_special = true}), expected);
}

TEST(ChatTemplate, RawFormatIsTheTextAsItIs) {
  const ChatTemplate t = ChatTemplate::builtin("raw");
  EXPECT_TRUE(t.is_raw());
  EXPECT_EQ(t.render({{"user", "Once upon a time"}, {"assistant", " there was"}, {"user", " a cat"}}, true, {}),
            "Once upon a time there was a cat");
}

TEST(ChatTemplate, UnknownBuiltInNamesTheKnownOnes) {
  try {
    ChatTemplate::builtin("llama9");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("llama9"), std::string::npos);
    for (const char* n : {"llama2", "llama3", "chatml", "qwen2", "glm4", "chatglm3", "telechat2", "mistral", "raw"})
      EXPECT_NE(msg.find(n), std::string::npos) << n;
  }
}

}  // namespace
}  // namespace loom::tokenizer
