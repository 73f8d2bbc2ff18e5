// How a model's chat template is found (embedded, in its folder, an
// override, a family guess, raw), the special-token texts templates see,
// conversations read from JSON, and stopping at end-of-turn text.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/metadata.h"
#include "loom/tokenizer/chat_stop.h"
#include "loom/tokenizer/chat_template.h"
#include "support/test_data.h"

namespace loom::tokenizer {
namespace {

using format::GgufValue;
using format::Metadata;

Metadata model(std::string arch, std::vector<std::string> tokens = {}, std::string name = {}) {
  Metadata m("test.gguf");
  m.set("general.architecture", GgufValue::make_string(std::move(arch)));
  if (!name.empty()) m.set("general.name", GgufValue::make_string(std::move(name)));
  if (!tokens.empty()) m.set("tokenizer.ggml.tokens", GgufValue::make_string_array(std::move(tokens)));
  return m;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string write_file(const std::string& name, const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string path = test::scratch_dir(std::string("chat_for_model/") + info->name()) + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(ChatForModel, EmbeddedTemplateComesFirst) {
  Metadata m = model("qwen2");
  m.set("tokenizer.chat_template", GgufValue::make_string("{% for m in messages %}[{{ m.role }}]{% endfor %}"));
  const ChatTemplate t = for_model(m, "");
  EXPECT_EQ(t.name(), "tokenizer.chat_template");
  EXPECT_EQ(t.render({{"user", "x"}}, true, {}), "[user]");
}

TEST(ChatForModel, OverrideByNameOrFile) {
  Metadata m = model("qwen2");
  m.set("tokenizer.chat_template", GgufValue::make_string("embedded"));
  EXPECT_EQ(for_model(m, "", "llama3").name(), "llama3");
  const std::string jinja = write_file("mine.jinja", "{{ messages[0].content | upper }}\n");
  EXPECT_EQ(for_model(m, "", jinja).render({{"user", "hi"}}, true, {}), "HI");
  const std::string config = write_file("tokenizer_config.json", R"({"chat_template": "<{{ messages|length }}>"})");
  EXPECT_EQ(for_model(m, "", config).render({{"user", "hi"}}, true, {}), "<1>");
  const std::string e = error_of([&] { for_model(m, "", "no-such-format"); });
  EXPECT_NE(e.find("no-such-format"), std::string::npos) << e;
  EXPECT_NE(e.find("llama2"), std::string::npos) << e;  // lists the built-in names
}

TEST(ChatForModel, AnEmbeddedTemplateWithASyntaxErrorSaysWhatToDo) {
  Metadata m = model("llama");
  m.set("tokenizer.chat_template", GgufValue::make_string("{% for m in messages %}\n{{ m.role }"));
  const std::string e = error_of([&] { for_model(m, ""); });
  EXPECT_NE(e.find("tokenizer.chat_template, line 2"), std::string::npos) << e;
  EXPECT_NE(e.find("--chat-template"), std::string::npos) << e;
}

TEST(ChatForModel, FamilyGuesses) {
  EXPECT_EQ(for_model(model("qwen2"), "").name(), "qwen2");
  EXPECT_EQ(for_model(model("chatglm", {"[gMASK]", "<sop>", "<|user|>"}), "").name(), "glm4");
  EXPECT_EQ(for_model(model("chatglm", {"<unk>", "<s>", "</s>"}), "").name(), "chatglm3");
  EXPECT_EQ(for_model(model("glm4"), "").name(), "glm4");
  EXPECT_EQ(for_model(model("telechat2"), "").name(), "telechat2");
  EXPECT_EQ(for_model(model("llama", {"<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>"}), "").name(), "llama3");
  EXPECT_EQ(for_model(model("llama", {"<unk>", "<s>", "</s>", "[INST]", "[/INST]"}), "").name(), "mistral");
  EXPECT_EQ(for_model(model("llama", {"<|im_start|>", "<|im_end|>"}), "").name(), "chatml");
  EXPECT_EQ(for_model(model("llama", {}, "Llama-2-7b-chat"), "").name(), "llama2");
  // A plain Llama (like the stories model loom ships) has no chat format.
  const ChatTemplate raw = for_model(model("llama", {"<unk>", "<s>", "</s>"}, "stories260K"), "");
  EXPECT_TRUE(raw.is_raw());
  EXPECT_NE(raw.origin().find("raw"), std::string::npos);
}

TEST(ChatForModel, ContextFromGgufConfigAndTokenizer) {
  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const ChatContext c = chat_context(format::GgufFile::open(vocab)->metadata());
  EXPECT_EQ(c.bos_token, "<s>");  // tokenizer.ggml.bos_token_id 1, eos 2 in the llama-spm vocabulary
  EXPECT_EQ(c.eos_token, "</s>");

  LOOM_DATA(qwen, "tokenizers/qwen2/tokenizer_config.json");
  const ChatContext q = chat_context_from_config(qwen.substr(0, qwen.rfind('/')));
  EXPECT_EQ(q.bos_token, "");  // "bos_token": null
  EXPECT_EQ(q.eos_token, "<|endoftext|>");
  LOOM_DATA(tele, "tokenizers/telechat2/tokenizer_config.json");
  EXPECT_EQ(chat_context_from_config(tele.substr(0, tele.rfind('/'))).eos_token, "<_end>");  // an AddedToken object
}

TEST(ChatForModel, MessagesFromJson) {
  const auto a = parse_chat_messages(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "你好"}])", "a.json");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].role, "user");
  EXPECT_EQ(a[1].content, "你好");
  const auto b = parse_chat_messages(R"({"messages": [{"role": "user", "content": "x", "extra": 1}]})", "b.json");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].content, "x");

  std::string e = error_of([] { parse_chat_messages(R"([{"role": "user", "content": "x"})", "broken.json"); });
  EXPECT_NE(e.find("broken.json: not valid JSON"), std::string::npos) << e;
  e = error_of([] { parse_chat_messages(R"([{"content": "x"}])", "norole.json"); });
  EXPECT_NE(e.find("norole.json: message 1 has no string \"role\""), std::string::npos) << e;
  e = error_of([] { parse_chat_messages(R"({"msgs": []})", "obj.json"); });
  EXPECT_NE(e.find("obj.json"), std::string::npos) << e;
}

TEST(ChatStopText, HoldsBackOnlyWhatCouldBecomeAStopText) {
  ChatStop s({"<|im_end|>"});
  EXPECT_EQ(s.push("Hello"), "Hello");
  EXPECT_EQ(s.push(" wor<"), " wor");  // "<" might start "<|im_end|>"
  EXPECT_EQ(s.push("ld"), "<ld");      // it did not
  EXPECT_EQ(s.push("!<|im_"), "!");
  EXPECT_EQ(s.push("end|>ignored"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push("more"), "");

  ChatStop t({"<|user|>", "<|observation|>"});
  EXPECT_EQ(t.push("a<|obs"), "a");
  EXPECT_EQ(t.finish(), "<|obs");  // generation ended otherwise: the held text is shown
  EXPECT_FALSE(t.stopped());
  EXPECT_TRUE(t.is_stop("<|user|>"));
  EXPECT_FALSE(t.is_stop("<|assistant|>"));

  ChatStop none({});
  EXPECT_EQ(none.push("<|im_end|>"), "<|im_end|>");
}

}  // namespace
}  // namespace loom::tokenizer
