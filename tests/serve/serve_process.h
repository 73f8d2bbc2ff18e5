// Runs `loom serve` as users do, on a free port, for end-to-end tests: the
// process is started with --port 0, the port is read from its "listening on"
// line, and the destructor stops it with SIGTERM (SIGKILL if it hangs).
//
//   ServeProcess s({"--parallel", "2"});
//   httplib::Client c("127.0.0.1", s.port());
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom::test {

class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> args, const std::string& name = "serve") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string dir = scratch_dir(std::string("serve/") + info->test_suite_name() + "." + info->name());
    out_ = dir + "/" + name + ".stdout";
    err_ = dir + "/" + name + ".stderr";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> argv_s = {loom_binary(), "serve", "--port", "0", "--threads", "1"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot start " << argv_s[0];
      return;
    }
    const std::regex listening(R"(listening on http://[^ ]*:(\d+))");
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < give_up) {
      std::smatch m;
      const std::string out = slurp(out_);
      if (std::regex_search(out, m, listening)) {
        port_ = std::stoi(m[1]);
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "loom serve exited before listening:\n" << slurp(err_);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "loom serve did not print its address within 30 s:\n" << slurp(err_);
  }

  ~ServeProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "loom serve did not stop within 5 s of SIGTERM";
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  bool ok() const { return port_ > 0; }
  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
  std::string out_, err_;
};

}  // namespace loom::test
