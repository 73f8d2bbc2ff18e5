// Runs the built `loom` command the way users and scripts do: with
// arguments, optional text on stdin (else /dev/null, so nothing waits on a
// terminal), stdout and stderr captured in files under the test's own
// scratch folder (ctest runs tests in parallel).
//
//   test::LoomRun r = test::run_loom({"chat", "-m", model}, "Hello\n/exit\n");
//   EXPECT_EQ(r.exit_code, 0);  r.out, r.err
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_data.h"

extern char** environ;

namespace loom::test {

struct LoomRun {
  int exit_code = -1;  // 128 + signal if it was killed
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline LoomRun run_loom(const std::vector<std::string>& args, const std::string& input = {}) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = scratch_dir(std::string("cli/") + info->test_suite_name() + "." + info->name());
  const std::string in = dir + "/stdin", out = dir + "/stdout", err = dir + "/stderr";
  std::ofstream(in, std::ios::binary) << input;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, input.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_s = {loom_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  LoomRun r;
  const int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (spawned != 0) return r;
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace loom::test
