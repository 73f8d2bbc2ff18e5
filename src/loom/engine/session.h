// Session: one loaded model (weights, tokenizer, backend) and one sequence
// with its KV cache, for the command line (`loom run`, `loom chat`). Tokens
// are fed in order; the cache keeps everything fed since the last reset(), so
// a chat continues without recomputing earlier turns.
// The multi-sequence server engine builds on the same model::Runner.
//
//   engine::Session s({.model_path = "model.gguf"});
//   auto ids = s.tokenizer().encode("Hello", {.add_bos = true});
//   s.generate(ids, {.n_predict = 32}, [&](int32_t id) { std::cout << dec.push(id); return true; });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/model/model.h"
#include "loom/model/runner.h"
#include "loom/sample/sampler.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::engine {

struct SessionOptions {
  std::string model_path;
  std::string tokenizer_path;  // llama2.c models: their tokenizer .bin (found next to the model if empty)
  std::string backend = "cpu";
  int threads = 0;             // 0: all hardware threads
  int64_t ctx_size = 0;        // 0: the model's training context
  DType kv_type = DType::F32;
  int64_t batch_size = 256;    // prompt tokens per forward pass
  std::optional<DType> quantize;  // convert the weight matrices at load time (q8_0, q4_0, ...) into owned memory
  std::vector<std::string> lora;  // PEFT LoRA adapter folders merged into the weights at load time (model/lora.h)
};

struct GenerateOptions {
  int64_t n_predict = 128;     // tokens to generate (< 0: until the context is full)
  sample::SamplerParams sampling;
  bool stop_at_eog = true;     // stop at an end-of-generation token (not emitted)
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prompt_seconds = 0;
  double generate_seconds = 0;
  bool stopped_by_eog = false;
};

class Session {
 public:
  explicit Session(const SessionOptions& options);
  ~Session();

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  const model::Model& model() const { return *model_; }
  backend::Backend& backend() { return *backend_; }
  int64_t position() const { return position_; }
  int64_t capacity() const { return capacity_; }

  // Appends tokens to the sequence; returns the logits after the last one.
  std::span<const float> feed(std::span<const int32_t> tokens);
  // Forgets the sequence (the cache memory is reused).
  void reset();
  // The tokens fed so far, in order: what the KV cache holds.
  std::span<const int32_t> tokens() const { return history_; }
  // Keeps only the first n_tokens of the sequence (0 <= n_tokens <=
  // position()); the next feed continues at position n_tokens. A chat turn
  // rewinds to the prefix it shares with the cache and feeds only the rest.
  void rewind(int64_t n_tokens);
  // The model file's metadata (GGUF keys), e.g. for its chat template.
  const model::ModelSource& source() const { return *source_; }

  // Feeds the prompt, then samples up to n_predict tokens, calling
  // on_token(id) for each (return false to stop). Sampled tokens are fed back.
  GenerateStats generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                         const std::function<bool(int32_t)>& on_token);

 private:
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<model::ModelSource> source_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<model::KvCache> kv_;
  std::unique_ptr<model::Runner> runner_;
  model::Batch batch_;
  std::vector<int32_t> history_;
  int64_t position_ = 0;
  int64_t capacity_ = 0;
  int64_t batch_size_ = 256;
};

// Loads the tokenizer that goes with a model: embedded in a GGUF, the
// tokenizer files of a Hugging Face folder, or the llama2.c tokenizer file
// (given, or tokenizer.bin / tok<V>.bin beside it).
std::unique_ptr<tokenizer::Tokenizer> load_tokenizer(const model::ModelSource& source, const std::string& tokenizer_path);

}  // namespace loom::engine
