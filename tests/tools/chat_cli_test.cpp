// `loom chat-format` and `loom chat` as scripts use them: the exact prompt
// of a model's own template, and piped conversations with their documented
// output (answers on stdout, one "chat: turn ..." line per turn on stderr).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "loom/format/gguf.h"
#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

using test::LoomRun;
using test::run_loom;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Files of the running test (ctest runs tests in parallel processes).
std::string scratch(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return test::scratch_dir(std::string("chat_cli/") + info->test_suite_name() + "." + info->name()) + "/" + name;
}

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = scratch(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// A copy of a GGUF file (metadata and tensors) with a chat template added.
std::string with_template(const std::string& src, const std::string& name, const std::string& tmpl) {
  const auto in = format::GgufFile::open(src);
  format::GgufWriter w;
  for (const auto& [k, v] : in->metadata().entries()) w.set(k, v);
  w.set("tokenizer.chat_template", format::GgufValue::make_string(tmpl));
  for (const auto& t : in->tensors()) w.add_tensor_raw(t.name, t.ggml_type, t.shape, t.data, t.nbytes);
  const std::string out = scratch(name);
  w.write(out);
  return out;
}

// Llama 2's official template (meta-llama/Llama-2-7b-chat-hf tokenizer_config.json).
constexpr const char* kLlama2 = R"TPL({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})TPL";

constexpr const char* kMessages = R"([
  {"role": "system", "content": "Be brief."},
  {"role": "user", "content": "Hi"},
  {"role": "assistant", "content": "Hello."},
  {"role": "user", "content": "Bye"}
])";

TEST(ChatFormatCli, PrintsTheEmbeddedTemplatesPromptExactly) {
  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const std::string model = with_template(vocab, "llama2-template.gguf", kLlama2);
  const std::string messages = write_file("messages.json", kMessages);
  const LoomRun r = run_loom({"chat-format", "-m", model, "--messages", messages});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // By hand from the template, with the vocabulary's BOS "<s>" and EOS "</s>"; no newline is added.
  EXPECT_EQ(r.out, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_TRUE(contains(r.err, "tokenizer.chat_template")) << r.err;
}

TEST(ChatFormatCli, OverridesAndGenerationPrompt) {
  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const std::string messages = write_file("messages.json", R"({"messages": [{"role": "user", "content": "Hi"}]})");
  LoomRun r = run_loom({"chat-format", "-m", vocab, "--messages", messages, "--chat-template", "chatml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  r = run_loom({"chat-format", "-m", vocab, "--messages", messages, "--chat-template", "chatml", "--no-generation-prompt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n");
  const std::string file = write_file("mine.jinja", "{% for m in messages %}{{ m.role|upper }}: {{ m.content }}{% endfor %}");
  r = run_loom({"chat-format", "-m", vocab, "--messages", messages, "--chat-template", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "USER: Hi");
}

TEST(ChatFormatCli, HuggingFaceFolderUsesItsTokenizerConfig) {
  LOOM_DATA(config, "tokenizers/glm4/tokenizer_config.json");
  const std::string folder = config.substr(0, config.rfind('/'));
  const std::string messages = write_file("messages.json", kMessages);
  const LoomRun r = run_loom({"chat-format", "-m", folder, "--messages", messages});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello.<|user|>\nBye<|assistant|>");
}

TEST(ChatFormatCli, BadInputIsAClearError) {
  LOOM_DATA(vocab, "vocab/ggml-vocab-llama-spm.gguf");
  const std::string broken = write_file("broken.json", R"([{"role": "user", "content": "x"})");
  LoomRun r = run_loom({"chat-format", "-m", vocab, "--messages", broken});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "broken.json")) << r.err;
  EXPECT_TRUE(contains(r.err, "not valid JSON")) << r.err;

  const std::string messages = write_file("messages.json", kMessages);
  const std::string bad_tmpl = write_file("bad.jinja", "{% for m in messages %}\n{{ m.role }\n");
  r = run_loom({"chat-format", "-m", vocab, "--messages", messages, "--chat-template", bad_tmpl});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "bad.jinja, line 2")) << r.err;

  // The Llama 2 template refuses two user turns in a row.
  const std::string two_users = write_file("two.json", R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  r = run_loom({"chat-format", "-m", vocab, "--messages", two_users, "--chat-template", "llama2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "Conversation roles must alternate")) << r.err;

  r = run_loom({"chat-format", "-m", vocab, "--messages", scratch("missing.json")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "missing.json")) << r.err;
  EXPECT_EQ(run_loom({"chat-format", "-m", vocab}).exit_code, 1);  // --messages is required
}

// One "chat: turn ..." line of stderr.
struct Turn {
  int n = 0;
  long prompt = 0, reused = 0, fed = 0, answer_tokens = 0, answer_bytes = 0, position = 0;
};

std::vector<Turn> turns_of(const std::string& err) {
  static const std::regex line(
      R"(chat: turn (\d+): prompt (\d+) tokens \((\d+) reused, (\d+) fed\), answer (\d+) tokens \((\d+) bytes\), position (\d+))");
  std::vector<Turn> out;
  for (std::sregex_iterator it(err.begin(), err.end(), line), end; it != end; ++it) {
    const std::smatch& m = *it;
    out.push_back({std::stoi(m[1]), std::stol(m[2]), std::stol(m[3]), std::stol(m[4]), std::stol(m[5]),
                   std::stol(m[6]), std::stol(m[7])});
  }
  return out;
}

// The answers on stdout, cut by the byte counts stderr reports; each must be
// followed by exactly one newline and nothing may be left over.
std::vector<std::string> answers_of(const std::string& out, const std::vector<Turn>& turns) {
  std::vector<std::string> answers;
  size_t pos = 0;
  for (const Turn& t : turns) {
    EXPECT_LE(pos + size_t(t.answer_bytes) + 1, out.size());
    if (pos + size_t(t.answer_bytes) + 1 > out.size()) break;
    answers.push_back(out.substr(pos, size_t(t.answer_bytes)));
    EXPECT_EQ(out[pos + size_t(t.answer_bytes)], '\n');
    pos += size_t(t.answer_bytes) + 1;
  }
  EXPECT_EQ(pos, out.size()) << "stdout holds more than the answers";
  return answers;
}

TEST(ChatCli, PipedLinesAreTurnsWithTheKvCacheKept) {
  LOOM_DATA(model, "models/arch/llama-random.gguf");
  const LoomRun r = run_loom({"chat", "-m", model, "--chat-template", "chatml", "--temp", "0", "-n", "6", "-t", "2"},
                             "Hello there\nHow are you?\n/reset\nAgain\n/exit\nThis line is never read as a turn\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<Turn> t = turns_of(r.err);
  ASSERT_EQ(t.size(), 3u) << r.err;  // three user lines; /reset and /exit are commands
  answers_of(r.out, t);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].n, int(i) + 1);
    EXPECT_EQ(t[i].reused + t[i].fed, t[i].prompt);
    EXPECT_LE(t[i].answer_tokens, 6);
    // The last sampled token is never fed, so the cache ends one short of prompt + answer.
    EXPECT_EQ(t[i].position, t[i].prompt + std::max(0L, t[i].answer_tokens - 1)) << r.err;
  }
  EXPECT_EQ(t[0].reused, 0);
  // Turn 2 re-renders the whole conversation but feeds only what the cache lacks.
  EXPECT_GT(t[1].reused, t[0].prompt / 2) << r.err;
  EXPECT_LT(t[1].fed, t[1].prompt - t[0].prompt / 2) << r.err;
  // /reset empties the cache: the next turn reuses nothing.
  EXPECT_TRUE(contains(r.err, "chat: reset: position 0\n")) << r.err;
  EXPECT_EQ(t[2].reused, 0);
  EXPECT_EQ(t[2].fed, t[2].prompt);
  EXPECT_LT(t[2].prompt, t[1].prompt);
}

TEST(ChatCli, UsesTheTemplateEmbeddedInTheModel) {
  LOOM_DATA(src, "models/arch/llama-random.gguf");
  const std::string model = with_template(
      src, "llama-chatml.gguf",
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
  const LoomRun r = run_loom({"chat", "-m", model, "--system", "Be brief.", "--temp", "0", "-n", "3", "-t", "2"},
                             "Hi\nMore\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "the model's own template (tokenizer.chat_template)")) << r.err;
  const std::vector<Turn> t = turns_of(r.err);
  ASSERT_EQ(t.size(), 2u) << r.err;
  answers_of(r.out, t);
  EXPECT_GT(t[1].reused, t[0].prompt / 2) << r.err;
}

TEST(ChatCli, AStoryModelChatsInTheRawFormat) {
  // stories260K (the default model) has no chat template: the text goes in
  // as it is, after BOS, and greedy decoding continues it exactly as
  // llama2.c did from BOS ("Once upon a time, there was ...").
  LOOM_DATA(model, "models/stories260K.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const LoomRun r = run_loom({"chat", "-m", model, "--temp", "0", "-n", "12", "-t", "2"}, "Once upon a time\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "raw format")) << r.err;
  const std::vector<Turn> t = turns_of(r.err);
  ASSERT_EQ(t.size(), 1u) << r.err;
  const std::vector<std::string> answers = answers_of(r.out, t);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_FALSE(answers[0].empty());
  const std::string story = test::slurp(expected);
  const std::string rest = story.substr(std::string("Once upon a time").size());
  EXPECT_EQ(rest.substr(0, answers[0].size()), answers[0]);
}

TEST(ChatCli, TheDefaultModelChatsToo) {
  LOOM_DATA(source, "models/stories260K.bin");  // the build turns it into the default model
  const LoomRun r = run_loom({"chat", "--temp", "0", "-n", "8", "-t", "2"}, "Once upon a time\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "raw format")) << r.err;
  EXPECT_EQ(turns_of(r.err).size(), 1u) << r.err;
}

TEST(ChatCli, HelpAndErrors) {
  for (const char* cmd : {"chat", "chat-format"}) {
    const LoomRun r = run_loom({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_TRUE(contains(r.out, "--chat-template")) << cmd << ": " << r.out;
  }
  EXPECT_TRUE(contains(run_loom({"--help"}).out, "chat-format"));
  LOOM_DATA(model, "models/arch/llama-random.gguf");
  const LoomRun r = run_loom({"chat", "-m", model, "--chat-template", "no-such-format", "-t", "2"}, "hi\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "no-such-format")) << r.err;
}

}  // namespace
}  // namespace loom
