// Engine: the serving core. One engine thread owns the model and runs steps;
// any thread submits requests and receives their tokens through a callback.
// Continuous batching: each step decodes one token of every running sequence
// and advances waiting prompts by chunks, all in one batched forward pass, so
// requests join and leave the batch at every step and a long prompt does not
// stall the others. The KV cache is paged (a block allocator over one shared
// cache); full blocks of a prompt prefix that another sequence already
// computed are shared, not recomputed, and where the shared prefix ends
// inside a block its rows are copied (prefix cache). Cancelling a request
// frees its blocks at the next step.
//
// Threading: submit(), cancel() and stats() may be called from any thread.
// Callbacks run on the engine thread, in order for each request; they must
// be quick (e.g. push into a queue the HTTP thread waits on) and must not
// call back into the engine except cancel().
//
//   engine::Engine e({.model_path = "model.gguf", .max_sequences = 8});
//   auto h = e.submit(request, [&](const engine::Event& ev) { ... });
//   h->cancel();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loom/core/dtype.h"
#include "loom/core/error.h"
#include "loom/format/metadata.h"
#include "loom/model/model.h"
#include "loom/sample/constraint.h"
#include "loom/sample/sampler.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::engine {

struct EngineOptions {
  std::string model_path;
  std::string tokenizer_path;     // only for models without an embedded tokenizer (llama2.c)
  std::string backend = "cpu";
  int threads = 0;                // 0: all hardware threads
  std::optional<DType> quantize;  // convert weight matrices at load time
  std::vector<std::string> lora;  // PEFT LoRA adapter folders merged into the weights at load time
  int64_t ctx_size = 0;           // longest sequence, prompt + generation (0: the model's training context)
  int max_sequences = 4;          // sequences decoded together (loom serve --parallel)
  int64_t kv_cache_tokens = 0;    // KV capacity shared by all sequences (0: max_sequences * ctx_size)
  DType kv_type = DType::F16;
  int block_size = 16;            // KV slots per block (and the prefix-cache granularity)
  int max_queue = 64;             // requests waiting for a running slot; more are refused (QueueFull)
  int64_t max_batch_tokens = 256; // tokens per forward pass: every decode token, then prompt chunks
  bool prefix_cache = true;
};

// One completion to generate. The prompt is token ids (the server renders the
// chat template and tokenizes on its own thread).
struct Request {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 256;  // generated tokens at most (the context also limits; <= 0: only the context)
  sample::SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings; the text up to them is returned, they are not
  bool ignore_eos = false;
  bool logprobs = false;      // report each sampled token's log-probability
  int top_logprobs = 0;       // and that many most likely alternatives (0..20)
  std::shared_ptr<const sample::Constraint> constraint;  // e.g. JSON; nullptr: free text
  std::optional<std::chrono::steady_clock::time_point> deadline;  // finish with Timeout after this
};

enum class FinishReason { Stop, Length, Cancelled, Timeout, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "timeout", "error"

struct TokenLogprob {
  int32_t token = -1;
  std::string text;  // the token's bytes (may be part of a UTF-8 character)
  float logprob = 0;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
  int64_t completion_tokens = 0;
};

struct Event {
  enum class Kind { Token, Finished };
  Kind kind = Kind::Token;
  // Token: the text this token adds, as complete UTF-8 (may be empty while a
  // possible stop string or a split character is held back).
  std::string text;
  int32_t token = -1;
  std::optional<TokenLogprob> logprob;  // when Request::logprobs
  std::vector<TokenLogprob> top;        // Request::top_logprobs alternatives, most likely first
  // Finished: the last event of a request; `text` holds anything held back.
  FinishReason reason = FinishReason::Stop;
  std::string error;  // for FinishReason::Error
  Usage usage;
  double queue_seconds = 0;  // submit -> first scheduled
  double first_token_seconds = 0;  // submit -> first generated token
  double total_seconds = 0;
};

class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  // Thread-safe. The engine stops the request at its next step, frees its KV
  // blocks and sends Finished with FinishReason::Cancelled.
  virtual void cancel() = 0;
  virtual uint64_t id() const = 0;
};

// Refused because max_queue requests are already waiting (HTTP 429).
class QueueFull : public Error {
 public:
  using Error::Error;
};

// A snapshot for /metrics. Histograms are cumulative counts per upper bound
// (seconds), Prometheus style.
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // counts[i]: observations <= bounds[i]; one more entry for +Inf
  double sum = 0;
  uint64_t count = 0;
};

struct EngineStats {
  int64_t running = 0, waiting = 0;
  // kv_blocks_used: blocks some request holds. Prefix-cache blocks nobody
  // holds count as free (they are handed out again, evicted, on demand), so
  // it returns to 0 once every request has finished.
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0, prefix_cache_hit_tokens = 0;
  uint64_t finished_stop = 0, finished_length = 0, finished_cancelled = 0, finished_timeout = 0,
           finished_error = 0;
  uint64_t preemptions = 0;  // running sequences sent back to the queue for want of KV blocks
  Histogram time_to_first_token, inter_token_latency;
};

class Engine {
 public:
  explicit Engine(const EngineOptions& options);
  ~Engine();  // cancels what is left and stops the engine thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Throws QueueFull when the queue is full, and a
  // loom::Error for a request that can never run (prompt longer than the
  // context, bad token ids). on_event runs on the engine thread.
  std::shared_ptr<RequestHandle> submit(Request request, std::function<void(const Event&)> on_event);

  const tokenizer::Tokenizer& tokenizer() const;
  const model::ModelConfig& config() const;
  const format::Metadata& metadata() const;  // the model file's keys (chat template, name)
  const std::string& model_path() const;
  int64_t ctx_size() const;
  // The vocabulary as constraints see it (shared, built once).
  std::shared_ptr<const sample::TokenTable> token_table() const;
  EngineStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::engine
