// Ctrl-C during `loom chat` stops the current answer, not the program: the
// test keeps stdin open as a pipe, starts an answer that would run for
// thousands of tokens, sends SIGINT once the answer is under way, then asks
// for /exit. The turn must end early and the program exit cleanly.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/test_data.h"

extern char** environ;

namespace loom {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ChatInterrupt, CtrlCStopsTheAnswerNotTheProgram) {
  LOOM_DATA(model, "models/arch/llama-random.gguf");
  const std::string dir = test::scratch_dir("chat_interrupt");
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  int in[2];
  ASSERT_EQ(pipe(in), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {test::loom_binary(), "chat", "-m", model, "--chat-template", "raw", "--temp", "0",
                                   "-n", "-1", "-c", "512", "-t", "1"};
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  const std::string hello = "Hello\n";
  ASSERT_EQ(write(in[1], hello.data(), hello.size()), ssize_t(hello.size()));

  // Wait until the answer is streaming (stdout grows), then interrupt it.
  const auto start = std::chrono::steady_clock::now();
  while (slurp(out).size() < 20 && std::chrono::steady_clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(slurp(out).size(), 20u) << "the answer never started: " << slurp(err);
  kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string bye = "/exit\n";
  ASSERT_EQ(write(in[1], bye.data(), bye.size()), ssize_t(bye.size()));
  close(in[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << slurp(err);
  // The turn ended early: far fewer tokens than the 512-token context allows.
  const std::string e = slurp(err);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(e, m, std::regex("answer ([0-9]+) tokens"))) << e;
  EXPECT_LT(std::stoll(m[1]), 400) << e;
}

}  // namespace
}  // namespace loom
