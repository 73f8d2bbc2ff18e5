// loom — train and serve open LLMs on the hardware at hand.
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "loom/core/error.h"

namespace loom::cli {

DType parse_weight_type(const std::string& s) {
  DType t;
  LOOM_CHECK(parse_dtype(s, &t) && (t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0 ||
                                    t == DType::Q4_0),
             "[cli] --type must be f32, f16, bf16, q8_0 or q4_0, got '{}'", s);
  return t;
}

std::string default_model_path() {
  if (const char* env = std::getenv("LOOM_MODEL"); env && *env) return env;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto candidate = exe.parent_path().parent_path() / "models" / "default.gguf";
  if (!ec && std::filesystem::is_regular_file(candidate)) return candidate.string();
  fail("[cli] no model given and no default model found at {}; pass -m MODEL.gguf (any GGUF of a supported "
       "architecture, or a llama2.c .bin), or set LOOM_MODEL",
       candidate.string());
}

}  // namespace loom::cli

int main(int argc, char** argv) {
  CLI::App app{"loom: run, serve and train open large language models on the hardware at hand", "loom"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("loom ") + LOOM_VERSION);
  loom::cli::add_run(app);
  loom::cli::add_info(app);
  loom::cli::add_convert(app);
  loom::cli::add_tokenize(app);
  loom::cli::add_chat_format(app);
  loom::cli::add_chat(app);
  loom::cli::add_bench(app);
  loom::cli::add_quantize(app);
  loom::cli::add_serve(app);
  loom::cli::add_tokenizer(app);
  loom::cli::add_train(app);
  loom::cli::add_export(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 1;
  } catch (const loom::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "loom: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
