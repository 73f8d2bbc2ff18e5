// Fixtures of the training-loop tests: a tokenizer folder (stories260K's
// 512-token SentencePiece vocabulary, as a Hugging Face folder) and a
// kilobyte of text (the first 1024 bytes of Tiny Shakespeare), both from
// shared/data.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "model/hf_folder.h"
#include "support/test_data.h"

namespace loom::test {

struct TinyRun {
  std::string tokenizer;  // folder
  std::string text;       // a .txt file of 1024 bytes
};

// Fills `out` (a test's scratch folder is named by `name`); call through
// ASSERT_NO_FATAL_FAILURE.
inline void tiny_run(const std::string& name, TinyRun* out) {
  LOOM_DATA(bin, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  LOOM_DATA(corpus, "corpora/en/tinyshakespeare_input.txt");
  out->tokenizer = stories_hf(bin, tok, "train/" + name);
  out->text = scratch_dir("train/" + name) + "/kilobyte.txt";
  write_file(out->text, read_all(corpus).substr(0, 1024));
}

}  // namespace loom::test
