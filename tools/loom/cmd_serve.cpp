// loom serve: an OpenAI-compatible HTTP server for one model, with a chat
// page at `/`. The engine thread owns the model; httplib's threads parse,
// tokenize and stream (see src/loom/serve/server.h). Ctrl-C or SIGTERM stops
// it: open streams end, their requests are cancelled.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/engine/engine.h"
#include "loom/serve/server.h"

namespace loom::cli {

namespace {

struct ServeArgs {
  std::string model, tokenizer, backend = "cpu", kv_type = "f16", quantize, host = "127.0.0.1", model_id,
                              chat_template, web_dir;
  int port = 8080, parallel = 4, queue = 64, threads = 0, http_threads = 0, block_size = 16;
  int64_t ctx_size = 0, kv_cache_tokens = 0, batch_tokens = 256;
  double timeout = 600, body_limit_mb = 8;
  std::vector<std::string> api_keys, lora;
  bool no_prefix_cache = false, quiet = false;
};

DType parse_type(const std::string& s, std::initializer_list<DType> allowed, const char* flag) {
  DType t;
  bool ok = parse_dtype(s, &t);
  ok = ok && std::find(allowed.begin(), allowed.end(), t) != allowed.end();
  LOOM_CHECK(ok, "[cli] {}: '{}' is not one of the types it takes", flag, s);
  return t;
}

void serve(const ServeArgs& a) {
  engine::EngineOptions eo;
  eo.lora = a.lora;
  eo.model_path = a.model.empty() ? default_model_path() : a.model;
  eo.tokenizer_path = a.tokenizer;
  eo.backend = a.backend;
  eo.threads = a.threads;
  eo.ctx_size = a.ctx_size;
  eo.max_sequences = a.parallel;
  eo.max_queue = a.queue;
  eo.kv_cache_tokens = a.kv_cache_tokens;
  eo.kv_type = parse_type(a.kv_type, {DType::F32, DType::F16}, "--kv-type");
  eo.block_size = a.block_size;
  eo.max_batch_tokens = a.batch_tokens;
  eo.prefix_cache = !a.no_prefix_cache;
  if (!a.quantize.empty())
    eo.quantize = parse_type(a.quantize, {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}, "--quantize");

  std::vector<std::string> keys = a.api_keys;
  if (const char* env = std::getenv("LOOM_API_KEY"); env && *env && keys.empty()) keys.emplace_back(env);

  // Ctrl-C and SIGTERM are taken by one thread (sigwait), which stops the
  // server; every other thread, the engine's included, has them blocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not the end of the server

  // glibc gives each thread that allocates under contention its own heap
  // arena (up to 8 per core), each keeping its freed pages: with dozens of
  // HTTP threads the server's memory would creep up for a long time after
  // start. Two arenas keep it flat; the HTTP threads allocate little, and the
  // engine thread's buffers are allocated once.
  mallopt(M_ARENA_MAX, 2);

  std::fprintf(stderr, "loom serve: loading %s\n", eo.model_path.c_str());
  engine::Engine engine(eo);
  serve::ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.api_keys = keys;
  so.model_id = a.model_id;
  so.chat_template = a.chat_template;
  // A streaming answer holds a thread, and so does an idle keep-alive connection for a few seconds.
  so.http_threads = a.http_threads > 0 ? a.http_threads : std::max(64, a.parallel + std::min(a.queue, 256) + 16);
  so.body_limit = size_t(a.body_limit_mb * 1024 * 1024);
  so.timeout_seconds = a.timeout;
  so.log_requests = !a.quiet;
  so.web_dir = a.web_dir;
  serve::Server server(engine, so);
  const int port = server.bind();

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGINT || sig == SIGTERM) std::fprintf(stderr, "loom serve: stopping\n");
    server.stop();
  });

  const std::string shown_host = a.host == "0.0.0.0" || a.host == "::" ? "127.0.0.1" : a.host;
  const std::string url = fmt::format("http://{}:{}", shown_host.find(':') != std::string::npos
                                                          ? "[" + shown_host + "]" : shown_host, port);
  std::printf("loom serve: listening on http://%s:%d (model '%s', context %lld tokens, %d parallel)\n",
              a.host.c_str(), port, server.model_id().c_str(), static_cast<long long>(engine.ctx_size()),
              a.parallel);
  std::printf("chat page: %s/\n", url.c_str());
  std::printf("try:\n  curl %s/v1/chat/completions -H 'Content-Type: application/json'%s \\\n"
              "    -d '{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"Good morrow, my lord\"}], "
              "\"max_tokens\": 64}'\n",
              url.c_str(), keys.empty() ? "" : " -H \"Authorization: Bearer $LOOM_API_KEY\"",
              server.model_id().c_str());
  std::fflush(stdout);

  server.listen();
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if listen() ended on its own
  waiter.join();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server (chat and text completions, streaming) with a chat page at /");
  c->add_option("-m,--model", a->model,
                "Model: GGUF file, llama2.c .bin, or Hugging Face folder (default: the built-in model)");
  c->add_option("--tokenizer", a->tokenizer, "Tokenizer file for llama2.c models (default: found beside the model)");
  c->add_option("--host", a->host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  c->add_option("--port", a->port, "Port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  c->add_option("--parallel", a->parallel, "Sequences generated at once (continuous batching)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  c->add_option("--queue", a->queue, "Requests that may wait for a slot; more get HTTP 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  c->add_option("-c,--ctx-size", a->ctx_size, "Longest sequence, prompt + answer (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--kv-cache-tokens", a->kv_cache_tokens,
                "KV cache capacity in tokens shared by all sequences (default: parallel x ctx-size)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--kv-type", a->kv_type, "KV cache type: f16 or f32")->capture_default_str();
  c->add_option("--block-size", a->block_size, "KV cache block size in tokens (prefix-cache granularity)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  c->add_option("--batch-tokens", a->batch_tokens, "Tokens per forward pass (decode tokens, then prompt chunks)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_flag("--no-prefix-cache", a->no_prefix_cache, "Do not share computed prompt prefixes between requests");
  c->add_option("--api-key", a->api_keys,
                "Require 'Authorization: Bearer KEY' (repeat for several keys; default: $LOOM_API_KEY, else none)");
  c->add_option("--timeout", a->timeout, "Seconds a completion may take before it is cut off (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--body-limit", a->body_limit_mb, "Largest request body in MiB; larger ones get HTTP 413")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--http-threads", a->http_threads,
                "Connections served at once (default: parallel + queue + 16, at least 64)")
      ->check(CLI::Range(0, 4096));
  c->add_option("--alias,--model-id", a->model_id, "Model name clients use (default: the file name without extension)");
  c->add_option("--chat-template", a->chat_template, "Chat template: a built-in name or a Jinja file (default: the model's)");
  c->add_option("--web-dir", a->web_dir, "Serve the chat page from this folder instead of the copy built into loom");
  c->add_option("-t,--threads", a->threads, "Compute threads (default: all)")->check(CLI::Range(0, 1024));
  c->add_option("--backend", a->backend, "Backend: cpu or reference")->capture_default_str();
  c->add_option("--quantize", a->quantize, "Convert the weight matrices at load time: q8_0, q4_0, f16 or bf16");
  c->add_option("--lora", a->lora, "PEFT LoRA adapter folder merged into the weights at load time (repeatable)");
  c->add_flag("-q,--quiet", a->quiet, "No log line per request");
  c->callback([a] { serve(*a); });
}

}  // namespace loom::cli
