// Sequence: one request as the engine thread sees it — its tokens (prompt,
// then what was generated), how many of them have keys/values in the cache,
// its KV blocks, its own sampler and constraint state, and the text output
// (incremental UTF-8 decoding with stop strings held back). TextOutput is the
// part that turns sampled ids into the text events carry.
//
//   TextOutput out(tok, {"\n\n"}, prompt);
//   bool stopped = false;
//   std::string text = out.push(id, stopped);   // "" while a possible stop string is held back
//   std::string rest = out.finish();             // at the end: whatever was held
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "loom/engine/block_pool.h"
#include "loom/engine/engine.h"
#include "loom/sample/sampler.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::engine {

using Clock = std::chrono::steady_clock;

// Generated text as it may be shown: whole UTF-8 characters only, and never a
// piece of text that might turn out to start a stop string.
class TextOutput {
 public:
  TextOutput(const tokenizer::Tokenizer& tok, std::vector<std::string> stops, std::span<const int32_t> prompt);
  // The text `id` releases. Sets `stopped` when a stop string is complete:
  // the returned text then ends just before it and nothing more may follow.
  std::string push(int32_t id, bool& stopped);
  // Everything still held (a partial character comes out as U+FFFD).
  std::string finish();

 private:
  std::string release(std::string text, bool final, bool& stopped);

  tokenizer::StreamDecoder decoder_;
  std::vector<std::string> stops_;
  std::string held_;  // the longest tail of the text so far that begins some stop string
};

struct RequestState final : RequestHandle {
  explicit RequestState(uint64_t id) : id_(id) {}
  void cancel() override { cancelled.store(true, std::memory_order_relaxed); }
  uint64_t id() const override { return id_; }
  std::atomic<bool> cancelled{false};

 private:
  uint64_t id_;
};

struct Sequence {
  Sequence(uint64_t id, Request r, std::function<void(const Event&)> cb, const tokenizer::Tokenizer& tok)
      : request(std::move(r)),
        on_event(std::move(cb)),
        handle(std::make_shared<RequestState>(id)),
        tokens(request.prompt),
        n_prompt(int64_t(request.prompt.size())),
        sampler(request.sampling),
        output(tok, request.stop, request.prompt) {}

  int64_t pending() const { return int64_t(tokens.size()) - n_computed; }  // tokens to feed before the next sample

  Request request;
  std::function<void(const Event&)> on_event;
  std::shared_ptr<RequestState> handle;

  // Model state.
  std::vector<int32_t> tokens;  // prompt, then generated tokens; the last one is not computed yet
  int64_t n_prompt = 0;
  int64_t n_computed = 0;       // tokens[0, n_computed) have keys/values in `blocks`
  std::vector<int32_t> blocks;  // KV blocks, in position order
  int64_t n_keyed = 0;          // leading blocks whose chain key is known (published or found in the cache)
  uint64_t chain = BlockPool::kRootHash;  // key of block n_keyed - 1
  int slot = -1;                // row of the block table while running

  // Generation state.
  sample::Sampler sampler;
  std::unique_ptr<sample::ConstraintState> constraint;
  TextOutput output;
  int64_t generated = 0;
  bool scheduled_once = false;
  int64_t cached_prompt_tokens = 0;
  bool failed = false;  // the event callback threw: finish with Error, call it no more
  std::string failure;

  Clock::time_point submitted = Clock::now(), first_scheduled{}, first_token{}, last_token{};
};

}  // namespace loom::engine
