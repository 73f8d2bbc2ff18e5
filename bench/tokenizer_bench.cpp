// Encode speed of loom's tokenizers in MB/s of input text, on the shared
// corpora (English: tiny Shakespeare; Chinese: Tang and Song poetry), one
// benchmark per tokenizer family and corpus. The shared data folder is
// $LOOM_SHARED_DATA or the one the build was configured with.
//
//   build/bin/microbench_tokenizer --benchmark_filter=llama3
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "loom/tokenizer/tokenizer.h"

namespace {

std::string data_path(const std::string& relative) {
  const char* env = std::getenv("LOOM_SHARED_DATA");
  return std::string(env && *env ? env : LOOM_SHARED_DATA_DEFAULT) + "/" + relative;
}

// The first `limit` bytes of a corpus, cut back to a character boundary.
std::string corpus(const std::string& relative, size_t limit) {
  std::ifstream in(data_path(relative), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str().substr(0, limit);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
  if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  return text;
}

void encode(benchmark::State& state, const std::string& tokenizer, const std::string& text_file) {
  std::unique_ptr<loom::tokenizer::Tokenizer> tok;
  std::string text;
  try {
    tok = loom::tokenizer::load(data_path(tokenizer));
    text = corpus(text_file, 256 * 1024);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (text.empty()) {
    state.SkipWithError(("cannot read " + data_path(text_file)).c_str());
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok->encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["bytes/token"] = static_cast<double>(text.size()) / static_cast<double>(tokens ? tokens : 1);
}

constexpr const char* kEnglish = "corpora/en/tinyshakespeare_input.txt";
constexpr const char* kChinese = "corpora/zh/tang_song_poetry.txt";

#define LOOM_TOKENIZER_BENCH(name, path)                                                          \
  BENCHMARK_CAPTURE(encode, name##_en, path, kEnglish)->Unit(benchmark::kMillisecond);          \
  BENCHMARK_CAPTURE(encode, name##_zh, path, kChinese)->Unit(benchmark::kMillisecond)

LOOM_TOKENIZER_BENCH(llama_spm_gguf, "vocab/ggml-vocab-llama-spm.gguf");
LOOM_TOKENIZER_BENCH(gpt2_gguf, "vocab/ggml-vocab-gpt-2.gguf");
LOOM_TOKENIZER_BENCH(deepseek_llm_gguf, "vocab/ggml-vocab-deepseek-llm.gguf");
LOOM_TOKENIZER_BENCH(llama3_tiktoken, "tokenizers/llama3");
LOOM_TOKENIZER_BENCH(qwen2_hf, "tokenizers/qwen2");
LOOM_TOKENIZER_BENCH(glm4_tiktoken, "tokenizers/glm4");
LOOM_TOKENIZER_BENCH(chatglm3_spm, "tokenizers/chatglm3");
LOOM_TOKENIZER_BENCH(telechat2_spm, "tokenizers/telechat2");

}  // namespace

BENCHMARK_MAIN();
