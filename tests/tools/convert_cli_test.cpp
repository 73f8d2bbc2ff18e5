// `loom convert` between llama2.c, GGUF and Hugging Face folders, and `loom
// run` from a folder, as users call them: the golden text of stories260K
// from every form, --quantize on load equal to a converted file, and broken
// folders failing with exit code 1 and a message naming the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/hf_folder.h"
#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

using test::run_loom;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string dir_for(const std::string& name) {
  const std::string d = test::scratch_dir("convert-cli/" + name);
  std::filesystem::remove_all(d + "/out");
  return d + "/out";
}

TEST(ConvertCli, StoriesToAFolderAndBackRunTheGoldenText) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(expected, "models/expected_stories260K_t0_n200.txt");
  const std::string golden = test::slurp(expected) + "\n";
  const std::string hf = dir_for("golden-hf");
  auto c = run_loom({"convert", bin, "--tokenizer", tok, "--to", "hf", "-o", hf});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(std::filesystem::exists(hf + "/config.json"));
  EXPECT_TRUE(std::filesystem::exists(hf + "/tokenizer.model"));
  auto r = run_loom({"run", "-m", hf, "--temp", "0", "-n", "200", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, golden);

  const std::string gguf = test::scratch_dir("convert-cli/golden-hf") + "/back.gguf";
  c = run_loom({"convert", hf, "--tokenizer", tok, "-o", gguf});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  r = run_loom({"run", "-m", gguf, "--temp", "0", "-n", "200", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, golden);

  // Without a tokenizer the file is still written, and the user is told how to add one.
  const std::string bare = test::scratch_dir("convert-cli/golden-hf") + "/bare.gguf";
  c = run_loom({"convert", hf, "-o", bare, "--type", "q8_0"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(has(c.err, "no tokenizer metadata")) << c.err;
  r = run_loom({"run", "-m", bare, "--tokenizer", tok, "--temp", "0", "-n", "20"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  const auto info = run_loom({"info", hf});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(has(info.out, "format: Hugging Face folder")) << info.out;
  EXPECT_TRUE(has(info.out, "rope.style")) << info.out;
  EXPECT_TRUE(has(info.out, "blk.4.ffn_down.weight")) << info.out;
}

TEST(ConvertCli, QuantizeOnLoadPrintsWhatAConvertedFilePrints) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  const std::string q8 = test::scratch_dir("convert-cli/quantize") + "/q8.gguf";
  auto c = run_loom({"convert", bin, "--tokenizer", tok, "--type", "q8_0", "-o", q8});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto want = run_loom({"run", "-m", q8, "--temp", "0", "-n", "200", "-t", "2"});
  ASSERT_EQ(want.exit_code, 0) << want.err;
  const auto got = run_loom({"run", "-m", bin, "--quantize", "q8_0", "--temp", "0", "-n", "200", "-t", "2"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, want.out);
  const auto bad = run_loom({"run", "-m", bin, "--quantize", "q5_k", "-n", "1"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(has(bad.err, "--quantize must be")) << bad.err;
}

// Broken folders, each failing `loom run` with exit code 1 and a message
// naming the file, the tensor and what was expected.
class ConvertCliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_DATA(bin, "models/stories260K.bin");
    LOOM_DATA(tok, "models/tok512.bin");
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    good_ = test::stories_hf(bin, tok, "cli-" + name);
    bad_ = good_ + "-bad";
  }
  test::LoomRun run_bad() { return run_loom({"run", "-m", bad_, "-n", "4"}); }
  std::string good_, bad_;
};

TEST_F(ConvertCliErrors, MissingTensor) {
  test::rewrite_folder(good_, bad_, [](std::vector<test::TensorOut>& ts) {
    std::erase_if(ts, [](const test::TensorOut& t) { return t.name == "model.layers.0.self_attn.v_proj.weight"; });
  });
  const auto r = run_bad();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, bad_)) << r.err;
  EXPECT_TRUE(has(r.err, "missing tensor 'blk.0.attn_v.weight' (expected shape [32, 64])")) << r.err;
  EXPECT_TRUE(has(r.err, "model.layers.0.self_attn.v_proj.weight")) << r.err;
}

TEST_F(ConvertCliErrors, WrongShape) {
  test::rewrite_folder(good_, bad_, [](std::vector<test::TensorOut>& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.3.self_attn.k_proj.weight") t.dims = {64, 32};
  });
  const auto r = run_bad();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "'blk.3.attn_k.weight' (model.layers.3.self_attn.k_proj.weight in model.safetensors)"))
      << r.err;
  EXPECT_TRUE(has(r.err, "has shape [64, 32], expected [32, 64]")) << r.err;
}

TEST_F(ConvertCliErrors, TruncatedSafetensors) {
  test::rewrite_folder(good_, bad_, [](std::vector<test::TensorOut>&) {});
  const std::string file = bad_ + "/model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  const auto r = run_bad();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, file)) << r.err;
  EXPECT_TRUE(has(r.err, "truncated")) << r.err;
}

TEST_F(ConvertCliErrors, HeaderThatClaimsOneTerabyte) {
  test::rewrite_folder(good_, bad_, [](std::vector<test::TensorOut>&) {});
  const std::string file = bad_ + "/model.safetensors";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const uint64_t tb = uint64_t(1) << 40;
    f.write(reinterpret_cast<const char*>(&tb), 8);
  }
  const auto r = run_bad();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, file)) << r.err;
  EXPECT_TRUE(has(r.err, "header claims 1099511627776 bytes")) << r.err;
}

TEST_F(ConvertCliErrors, UnknownArchitecture) {
  test::rewrite_folder(good_, bad_, [](std::vector<test::TensorOut>&) {});
  test::write_file(bad_ + "/config.json", R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"})");
  const auto r = run_bad();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, bad_ + "/config.json")) << r.err;
  EXPECT_TRUE(has(r.err, "unknown architecture 'GPT2LMHeadModel'")) << r.err;
  const auto c = run_loom({"convert", bad_, "-o", bad_ + "/x.gguf"});
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_TRUE(has(c.err, "unknown architecture")) << c.err;
}

// A Hugging Face folder with a byte-level BPE tokenizer.json (learnt here by
// `loom tokenizer train`, 2048 tokens like the default model's vocabulary)
// becomes a GGUF that carries the tokenizer: the GGUF tokenizes a text as
// the folder does, and greedy text of the GGUF equals that of the folder.
TEST(ConvertCli, HfFolderWithBpeTokenizerJsonKeepsItsTokenizerInTheGguf) {
  LOOM_DATA(corpus, "corpora/en/tinyshakespeare_input.txt");
  const std::string base = dir_for("bpe");
  std::filesystem::create_directories(base);
  auto t = run_loom({"tokenizer", "train", "--corpus", corpus, "-o", base + "/tok", "--vocab-size", "2048"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const std::string hf = base + "/hf";
  auto h = run_loom({"convert", std::string(LOOM_SOURCE_DIR) + "/models/shakespeare-3m.gguf", "--to", "hf", "-o", hf});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(base + "/tok/" + f, hf + "/" + f, std::filesystem::copy_options::overwrite_existing);
  const std::string gguf = base + "/from-hf.gguf";
  auto c = run_loom({"convert", hf, "-o", gguf});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_FALSE(has(c.err, "no tokenizer metadata")) << c.err;
  const std::string text = "To be, or not to be: that is the question.\nKING RICHARD III:\n";
  auto a = run_loom({"tokenize", "-m", hf, text}), b = run_loom({"tokenize", "-m", gguf, text});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 10u);
  auto ra = run_loom({"run", "-m", hf, "-p", "ROMEO:", "--temp", "0", "-n", "24", "-t", "2"});
  auto rb = run_loom({"run", "-m", gguf, "-p", "ROMEO:", "--temp", "0", "-n", "24", "-t", "2"});
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(ra.out, rb.out);
}

}  // namespace
}  // namespace loom
