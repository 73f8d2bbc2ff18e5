// Fixtures of the training-loop tests: a tokenizer folder (stories260K's
// 512-token SentencePiece vocabulary, as a Hugging Face folder) and a
// kilobyte of text (the first 1024 bytes of Tiny Shakespeare), both from
// shared/data.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

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

// Starts `loom ARGS...` (or `launcher... loom ARGS...`) with output into
// dir/NAME.{out,err}; returns the pid.
inline pid_t start(const std::vector<std::string>& argv, const std::string& dir, const std::string& name) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string out = dir + "/" + name + ".out", err = dir + "/" + name + ".err";
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline int run(const std::vector<std::string>& argv, const std::string& dir, const std::string& name) {
  return wait_exit(start(argv, dir, name));
}

}  // namespace loom::test
