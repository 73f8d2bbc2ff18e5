// Helpers of the Engine tests: the default model (stories260K, built by the
// build), an event collector per request, and the independent reference —
// engine::Session, the single-sequence path `loom run` uses.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loom/engine/engine.h"
#include "loom/engine/session.h"
#include "support/test_data.h"

namespace loom::engine::test {

// stories260K as llama2.c ships it (its tokenizer tok512.bin lies beside it),
// read from the shared data, so the tests need no tool-built file (the
// sanitizer build has no `loom` to convert it).
#define LOOM_DEFAULT_MODEL(var) LOOM_DATA(var, "models/stories260K.bin")

inline EngineOptions engine_options(const std::string& path) {
  EngineOptions o;
  o.model_path = path;
  o.threads = 1;
  o.kv_type = DType::F32;  // as the Session reference
  o.ctx_size = 256;
  o.max_sequences = 4;
  o.max_batch_tokens = 64;
  return o;
}

inline sample::SamplerParams greedy() {
  sample::SamplerParams p;
  p.temperature = 0;
  return p;
}

// The events of one request, as its callback (on the engine thread) saw them.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Event> events;
  bool done = false;
  std::function<void(const Event&)> extra;  // runs first, on the engine thread

  std::function<void(const Event&)> callback() {
    return [this](const Event& e) {
      if (extra) extra(e);
      std::lock_guard lock(mu);
      events.push_back(e);
      if (e.kind == Event::Kind::Finished) {
        done = true;
        cv.notify_all();
      }
    };
  }
  // The Finished event (the test fails if none comes within a minute).
  Event wait() {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return done; })) {
      ADD_FAILURE() << "the request did not finish";
      return {};
    }
    return events.back();
  }
  std::vector<int32_t> tokens() {
    std::lock_guard lock(mu);
    std::vector<int32_t> out;
    for (const auto& e : events)
      if (e.kind == Event::Kind::Token) out.push_back(e.token);
    return out;
  }
  std::string text() {  // every event's text, Finished included
    std::lock_guard lock(mu);
    std::string out;
    for (const auto& e : events) out += e.text;
    return out;
  }
};

inline Request request(std::vector<int32_t> prompt, int64_t max_tokens, sample::SamplerParams p = greedy()) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling = p;
  return r;
}

// What Session generates for the same request (stopping at an
// end-of-generation token unless ignore_eos, like the engine).
inline std::vector<int32_t> reference(Session& s, const Request& r) {
  s.reset();
  GenerateOptions g;
  g.n_predict = r.max_tokens;
  g.sampling = r.sampling;
  g.stop_at_eog = !r.ignore_eos;
  std::vector<int32_t> out;
  s.generate(r.prompt, g, [&](int32_t id) {
    out.push_back(id);
    return true;
  });
  return out;
}

inline SessionOptions session_options(const std::string& path) {
  SessionOptions o;
  o.model_path = path;
  o.threads = 1;
  o.kv_type = DType::F32;
  return o;
}

// The text a completion adds after its prompt, by whole-sequence decoding.
inline std::string completion_text(const tokenizer::Tokenizer& tok, const std::vector<int32_t>& prompt,
                                   const std::vector<int32_t>& generated) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  const std::string whole = tok.decode(all), head = tok.decode(prompt);
  EXPECT_EQ(whole.substr(0, head.size()), head);
  return whole.substr(head.size());
}

inline const std::vector<std::string>& story_prompts() {
  static const std::vector<std::string> p = {
      "Once upon a time",
      "Lily and Tom went to the park to play with their big red ball.",
      "The cat",
      "One day, a little bird flew over the house and saw a",
      "Tim was sad. His mom said",
      "The sun was hot and the children wanted to swim in the lake. They ran to the water and jumped in. It was",
  };
  return p;
}

}  // namespace loom::engine::test
