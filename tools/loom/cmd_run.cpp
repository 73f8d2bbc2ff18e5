// loom run: generate text from a prompt, streaming it to stdout.
#include <cstdio>
#include <random>

#include "commands.h"
#include "sampling_flags.h"
#include "loom/core/error.h"
#include "loom/engine/session.h"

namespace loom::cli {

namespace {

struct RunArgs {
  std::string model, tokenizer, prompt, backend = "cpu", kv_type = "f32", quantize;
  int64_t n_predict = 128, ctx_size = 0;
  int threads = 0;
  SamplingFlags sampling;
  std::vector<std::string> lora;
};

void run(const RunArgs& a) {
  engine::SessionOptions so;
  so.model_path = a.model.empty() ? default_model_path() : a.model;
  so.tokenizer_path = a.tokenizer;
  so.backend = a.backend;
  so.threads = a.threads;
  so.ctx_size = a.ctx_size;
  so.lora = a.lora;
  LOOM_CHECK(parse_dtype(a.kv_type, &so.kv_type) && (so.kv_type == DType::F32 || so.kv_type == DType::F16),
             "[cli] --kv-type must be f32 or f16, got '{}'", a.kv_type);
  if (!a.quantize.empty()) {
    DType q;
    LOOM_CHECK(parse_dtype(a.quantize, &q) && (q == DType::F16 || q == DType::BF16 || q == DType::Q8_0 ||
                                                q == DType::Q4_0),
               "[cli] --quantize must be f16, bf16, q8_0 or q4_0, got '{}'", a.quantize);
    so.quantize = q;
  }
  engine::Session session(so);
  const auto& tok = session.tokenizer();

  engine::GenerateOptions go;
  go.n_predict = a.n_predict;
  go.sampling = a.sampling.params();

  std::vector<int32_t> prompt = tok.encode(a.prompt, {.add_bos = tok.default_add_bos()});
  LOOM_CHECK(!prompt.empty(), "[cli] the prompt is empty and the tokenizer adds no BOS token; give -p TEXT");
  tokenizer::StreamDecoder out(tok);
  for (int32_t id : prompt) out.push(id);  // the prompt is not printed, but the decoder must know it
  const auto stats = session.generate(prompt, go, [&](int32_t id) {
    const std::string s = out.push(id);
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string rest = out.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "prompt: %lld tokens, %.1f tok/s | generation: %lld tokens, %.1f tok/s\n",
               static_cast<long long>(stats.prompt_tokens),
               stats.prompt_seconds > 0 ? double(stats.prompt_tokens) / stats.prompt_seconds : 0.0,
               static_cast<long long>(stats.generated_tokens),
               stats.generate_seconds > 0 ? double(stats.generated_tokens) / stats.generate_seconds : 0.0);
}

}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* c = app.add_subcommand("run", "Generate text from a prompt (the text goes to stdout, timing to stderr)");
  c->add_option("-m,--model", a->model,
                "Model: GGUF file, llama2.c .bin, or Hugging Face folder (default: the built-in model)");
  c->add_option("--tokenizer", a->tokenizer, "Tokenizer file for llama2.c models (default: found beside the model)");
  c->add_option("-p,--prompt", a->prompt, "Prompt text (default: empty, start from BOS)");
  c->add_option("-n,--n-predict", a->n_predict, "Tokens to generate (-1: until the context is full)")->capture_default_str();
  a->sampling.add_to(c);
  c->add_option("-t,--threads", a->threads, "Threads (default: all)")->check(CLI::Range(0, 1024));
  c->add_option("-c,--ctx-size", a->ctx_size, "Context size in tokens (default: the model's)")->check(CLI::NonNegativeNumber);
  c->add_option("--backend", a->backend, "Backend: cpu or reference")->capture_default_str();
  c->add_option("--kv-type", a->kv_type, "KV cache type: f32 or f16")->capture_default_str();
  c->add_option("--quantize", a->quantize,
                "Convert the weight matrices at load time: q8_0, q4_0, f16 or bf16 (as `loom convert --type` does)");
  c->add_option("--lora", a->lora, "PEFT LoRA adapter folder merged into the weights at load time (repeatable)");
  c->callback([a] { run(*a); });
}

}  // namespace loom::cli
