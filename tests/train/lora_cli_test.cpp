// LoRA through the `loom` command: `loom train --base stories260K.bin
// --lora-rank 4` writes a PEFT adapter checkpoint; greedy `loom run --lora`
// with it prints what `loom run` prints for the GGUF `loom export
// --merge-lora` writes; a missing adapter is a clear error with exit status 1.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "model/hf_folder.h"
#include "support/test_data.h"
#include "train/tiny_run.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::run;

TEST(LoraCli, RunWithAdapterPrintsWhatTheMergedExportPrints) {
#ifndef LOOM_HAVE_CLI
  GTEST_SKIP() << "the loom command is not built here (LOOM_BUILD_TOOLS=OFF)";
#endif
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(corpus, "corpora/en/tinyshakespeare_input.txt");
  const std::string dir = test::scratch_dir("train/lora-cli");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string text = dir + "/kilobyte.txt", out = dir + "/run";
  test::write_file(text, test::read_all(corpus).substr(0, 1024));
  const std::string loom = test::loom_binary();
  // The tokenizer is the base model's (tok512.bin beside the .bin).
  ASSERT_EQ(run({loom, "train", "--base", bin, "--lora-rank", "4", "--lora-targets", "q_proj,v_proj,down_proj",
                 "--data", text, "--seq-len", "64", "--batch", "4", "--steps", "20", "--lr", "1e-2", "--seed", "3",
                 "--weight-decay", "0", "--out", out, "-t", "2"},
                dir, "train"),
            0)
      << test::read_all(dir + "/train.err");
  const std::string adapter = out + "/step-000020";
  ASSERT_TRUE(fs::is_regular_file(adapter + "/adapter_model.safetensors")) << test::read_all(dir + "/train.err");

  const std::string merged = dir + "/merged.gguf";
  ASSERT_EQ(run({loom, "export", "-m", bin, "--merge-lora", adapter, "-o", merged}, dir, "export"), 0)
      << test::read_all(dir + "/export.err");

  const std::vector<std::string> gen = {"-p", "Once upon a time", "-n", "60", "--temp", "0", "-t", "2"};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), gen.begin(), gen.end());
    return head;
  };
  ASSERT_EQ(run(with({loom, "run", "-m", bin, "--lora", adapter}), dir, "lora"), 0)
      << test::read_all(dir + "/lora.err");
  ASSERT_EQ(run(with({loom, "run", "-m", merged}), dir, "merged"), 0) << test::read_all(dir + "/merged.err");
  ASSERT_EQ(run(with({loom, "run", "-m", bin}), dir, "base"), 0) << test::read_all(dir + "/base.err");
  const std::string lora_text = test::read_all(dir + "/lora.out"), merged_text = test::read_all(dir + "/merged.out");
  EXPECT_GT(lora_text.size(), 20u);
  EXPECT_EQ(lora_text, merged_text);
  std::printf("base:   %s\nadapter: %s", test::read_all(dir + "/base.out").c_str(), lora_text.c_str());

  EXPECT_EQ(run(with({loom, "run", "-m", bin, "--lora", dir + "/no-such-adapter"}), dir, "missing"), 1);
  EXPECT_NE(test::read_all(dir + "/missing.err").find("no-such-adapter"), std::string::npos);
}

}  // namespace
}  // namespace loom
