// The engine thread: takes submitted requests into the scheduler, runs one
// batched forward pass per step, samples every sequence that got a logits row
// and turns the result into events. Everything below `Impl::loop` runs on the
// engine thread; submit(), stats() and the handles' cancel() only touch the
// mutex-guarded inbox and counters (and an atomic flag).
#include "loom/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "loom/backend/backend.h"
#include "loom/engine/scheduler.h"
#include "loom/engine/sequence.h"
#include "loom/engine/session.h"
#include "loom/model/lora.h"
#include "loom/model/runner.h"

namespace loom::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Timeout: return "timeout";
    case FinishReason::Error: return "error";
  }
  return "error";
}

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Histogram make_histogram(std::vector<double> bounds) {
  Histogram h;
  h.counts.assign(bounds.size() + 1, 0);
  h.bounds = std::move(bounds);
  return h;
}

void observe(Histogram& h, double v) {
  for (size_t i = 0; i < h.bounds.size(); ++i)
    if (v <= h.bounds[i]) ++h.counts[i];
  ++h.counts.back();  // +Inf
  h.sum += v;
  ++h.count;
}

}  // namespace

struct Engine::Impl {
  explicit Impl(const EngineOptions& o);
  ~Impl();

  std::shared_ptr<RequestHandle> submit(Request request, std::function<void(const Event&)> on_event);

  // Engine thread.
  void loop();
  void step();
  void sweep();  // cancelled and timed-out requests leave before planning
  struct Outcome {
    FinishReason reason = FinishReason::Stop;
    std::string text = {}, error = {};
  };
  // Samples s's next token and sends it; says how s ends if it does.
  std::optional<Outcome> sample(Sequence& s, std::span<const float> logits);
  void fail_all(const std::string& why);  // everything the scheduler holds ends with Error
  void send(Sequence& s, const Event& ev);  // a throwing callback turns into an error for s
  void finish(std::unique_ptr<Sequence> s, FinishReason reason, std::string text = {}, std::string error = {});
  void publish_gauges();

  EngineOptions o;
  std::string model_path;
  int64_t ctx = 0;
  int64_t usable_blocks = 0;
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::ModelSource> source;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::shared_ptr<const sample::TokenTable> table;
  std::unique_ptr<model::KvCache> kv;
  std::unique_ptr<model::Runner> runner;
  std::unique_ptr<Scheduler> sched;
  std::vector<float> scratch;  // a masked copy of a logits row

  // Shared with other threads, under mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::vector<std::unique_ptr<Sequence>> inbox;
  uint64_t next_id = 1;
  EngineStats st;
  int64_t sched_waiting = 0;  // the scheduler's queue at the end of the last step

  std::thread thread;
};

Engine::Impl::Impl(const EngineOptions& opt) : o(opt), model_path(opt.model_path) {
  backend = backend::create(o.backend, {.threads = o.threads});
  source = model::ModelSource::open(o.model_path);
  for (const std::string& dir : o.lora) source->merge_lora(model::LoraAdapter::open(dir));
  if (o.quantize) source->quantize_weights(*o.quantize);
  model = model::load(*source, *backend);
  tok = load_tokenizer(*source, o.tokenizer_path);
  const auto& c = model->config();
  LOOM_CHECK(tok->vocab_size() <= c.n_vocab,
             "[engine] {}: the tokenizer has {} tokens but the model only {}; is it the right tokenizer?",
             o.model_path, tok->vocab_size(), c.n_vocab);
  ctx = o.ctx_size > 0 ? o.ctx_size : c.n_ctx_train;
  LOOM_CHECK(ctx > 0 && ctx <= (int64_t(1) << 24), "[engine] context size {} is out of range; pass --ctx-size", ctx);
  LOOM_CHECK(o.block_size > 0 && o.block_size <= 1024, "[engine] block size {} is out of range (1..1024)",
             o.block_size);
  LOOM_CHECK(o.max_sequences >= 1, "[engine] max_sequences must be at least 1, got {}", o.max_sequences);
  const int64_t kv_tokens = o.kv_cache_tokens > 0 ? o.kv_cache_tokens : int64_t(o.max_sequences) * ctx;
  usable_blocks = (kv_tokens + o.block_size - 1) / o.block_size;
  sched = std::make_unique<Scheduler>(SchedulerOptions{.max_sequences = o.max_sequences,
                                                       .max_batch_tokens = o.max_batch_tokens,
                                                       .block_size = o.block_size,
                                                       .n_blocks = usable_blocks,
                                                       .prefix_cache = o.prefix_cache});
  const int64_t trash = Scheduler::n_trash_blocks(o.max_batch_tokens, o.block_size);
  kv = std::make_unique<model::KvCache>(*backend, c, usable_blocks + trash, o.block_size, o.kv_type);
  runner = std::make_unique<model::Runner>(*model, *backend, *kv);

  auto t = std::make_shared<sample::TokenTable>();
  t->bytes.resize(size_t(c.n_vocab));  // ids past the tokenizer's have no text
  for (int32_t id = 0; id < tok->vocab_size(); ++id) {
    t->bytes[size_t(id)] = tok->token_bytes(id);
    if (tok->is_eog(id)) t->end_of_generation.push_back(id);
  }
  table = std::move(t);

  st.kv_blocks_total = usable_blocks;
  st.time_to_first_token = make_histogram({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
  st.inter_token_latency = make_histogram({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  thread = std::thread([this] { loop(); });
}

Engine::Impl::~Impl() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  cv.notify_all();
  if (thread.joinable()) thread.join();
}

std::shared_ptr<RequestHandle> Engine::Impl::submit(Request r, std::function<void(const Event&)> on_event) {
  const int64_t n = int64_t(r.prompt.size());
  LOOM_CHECK(n > 0, "[engine] the prompt is empty; a completion needs at least one token");
  LOOM_CHECK(n <= ctx, "[engine] the prompt has {} tokens but the context holds {}; shorten it or raise --ctx-size", n,
             ctx);
  LOOM_CHECK((n + o.block_size - 1) / o.block_size <= usable_blocks,
             "[engine] the prompt has {} tokens but the KV cache holds {}; raise the KV cache size", n,
             usable_blocks * o.block_size);
  const int32_t vocab = tok->vocab_size();
  for (int32_t id : r.prompt)
    LOOM_CHECK(id >= 0 && id < vocab, "[engine] prompt token id {} is outside the vocabulary [0, {})", id, vocab);
  LOOM_CHECK(r.top_logprobs >= 0 && r.top_logprobs <= 20, "[engine] top_logprobs must be in 0..20, got {}",
             r.top_logprobs);
  LOOM_CHECK(on_event != nullptr, "[engine] submit needs an event callback");
  std::unique_ptr<sample::ConstraintState> cs = r.constraint ? r.constraint->start() : nullptr;

  std::lock_guard lock(mu);
  if (int64_t(inbox.size()) + sched_waiting >= o.max_queue)
    throw QueueFull(fmt::format("[engine] {} requests are already waiting (max_queue); retry later", o.max_queue));
  auto s = std::make_unique<Sequence>(next_id++, std::move(r), std::move(on_event), *tok);
  s->constraint = std::move(cs);
  std::shared_ptr<RequestHandle> h = s->handle;
  inbox.push_back(std::move(s));
  ++st.waiting;
  cv.notify_one();
  return h;
}

void Engine::Impl::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stopping || !inbox.empty() || sched->running() + sched->waiting() > 0; });
      if (stopping) break;
      for (auto& s : inbox) sched->enqueue(std::move(s));
      inbox.clear();
      sched_waiting = sched->waiting();  // what submit() counts against max_queue
    }
    try {
      step();
    } catch (const std::exception& e) {  // a broken invariant: fail the requests, keep the thread
      fail_all(e.what());
    }
    publish_gauges();
  }
  // Shutting down: everything left is cancelled.
  std::vector<std::unique_ptr<Sequence>> left;
  {
    std::lock_guard lock(mu);
    left = std::move(inbox);
    inbox.clear();
  }
  for (Sequence* s : sched->find_if([](const Sequence&) { return true; })) left.push_back(sched->remove(s));
  for (auto& s : left) finish(std::move(s), FinishReason::Cancelled);
  publish_gauges();
}

void Engine::Impl::sweep() {
  const auto now = Clock::now();
  for (Sequence* s : sched->find_if([](const Sequence& s) { return s.handle->cancelled.load(); })) {
    std::string rest = s->output.finish();
    finish(sched->remove(s), FinishReason::Cancelled, std::move(rest));
  }
  for (Sequence* s : sched->find_if([&](const Sequence& s) { return s.request.deadline && *s.request.deadline <= now; })) {
    std::string rest = s->output.finish();
    finish(sched->remove(s), FinishReason::Timeout, std::move(rest));
  }
}

void Engine::Impl::fail_all(const std::string& why) {
  for (Sequence* s : sched->find_if([](const Sequence&) { return true; }))
    finish(sched->remove(s), FinishReason::Error, {}, why);
}

void Engine::Impl::step() {
  sweep();
  std::vector<std::unique_ptr<Sequence>> too_long;
  std::span<StepItem> items;
  try {
    items = sched->plan(too_long);
  } catch (const std::exception& e) {
    // A scheduler invariant broke: nothing it holds can be trusted to run.
    for (auto& s : too_long) finish(std::move(s), FinishReason::Error, {}, e.what());
    fail_all(e.what());
    return;
  }
  publish_gauges();  // admissions: the queue is shorter now
  // Sequences that outgrew the whole KV cache (a cache smaller than the context).
  for (auto& s : too_long) {
    std::string rest = s->output.finish();
    finish(std::move(s), FinishReason::Length, std::move(rest));
  }
  // Cached rows that admitted prompts share only in part are copied into
  // their own blocks before anything reads them.
  try {
    for (const KvCopy& c : sched->copies()) kv->copy_rows(*backend, c.src, c.dst, c.n);
  } catch (const std::exception& e) {
    std::vector<Sequence*> hit;
    for (const KvCopy& c : sched->copies()) hit.push_back(c.seq);
    for (Sequence* s : hit) finish(sched->remove(s), FinishReason::Error, {}, e.what());
    return;
  }
  sched->copies_done();
  if (items.empty()) return;

  std::span<const float> logits;
  try {
    logits = runner->forward(sched->batch());
  } catch (const std::exception& e) {
    std::vector<Sequence*> hit;
    for (const StepItem& it : items) hit.push_back(it.seq);
    for (Sequence* s : hit) finish(sched->remove(s), FinishReason::Error, {}, e.what());
    return;
  }
  sched->commit();
  const auto V = size_t(model->config().n_vocab);
  // Copy out what the loop needs: finishing a sequence must not disturb it.
  std::vector<std::pair<Sequence*, int32_t>> rows;
  for (const StepItem& it : items)
    if (it.logits_row >= 0) rows.emplace_back(it.seq, it.logits_row);
  for (auto [s, row] : rows) {
    std::optional<Outcome> end;
    try {
      end = sample(*s, logits.subspan(size_t(row) * V, V));
    } catch (const std::exception& e) {
      end = Outcome{FinishReason::Error, {}, e.what()};
    }
    if (end) finish(sched->remove(s), end->reason, std::move(end->text), std::move(end->error));
  }
}

std::optional<Engine::Impl::Outcome> Engine::Impl::sample(Sequence& s, std::span<const float> raw) {
  const Request& r = s.request;
  std::span<const float> logits = raw;
  if (s.constraint) {
    scratch.assign(raw.begin(), raw.end());
    s.constraint->mask(scratch);
    logits = scratch;
  }
  const int32_t id = s.sampler.sample(logits, s.tokens);
  const auto now = Clock::now();
  if (tok->is_eog(id) && !r.ignore_eos) return Outcome{FinishReason::Stop, s.output.finish()};
  if (s.constraint) s.constraint->accept(id);

  Event ev;
  ev.kind = Event::Kind::Token;
  ev.token = id;
  if (r.logprobs || r.top_logprobs > 0) {
    // log p = x - log(sum exp x), in float64 over the raw logits.
    double mx = -INFINITY;
    for (float x : raw) mx = std::max(mx, double(x));
    double sum = 0;
    for (float x : raw) sum += std::exp(double(x) - mx);
    const double lse = mx + std::log(sum);
    auto entry = [&](int32_t t) {
      return TokenLogprob{t, t < tok->vocab_size() ? tok->token_bytes(t) : std::string(),
                          float(double(raw[size_t(t)]) - lse)};
    };
    ev.logprob = entry(id);
    if (r.top_logprobs > 0) {
      std::vector<int32_t> ids(raw.size());
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
      const size_t k = std::min(ids.size(), size_t(r.top_logprobs));
      std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(), [&](int32_t a, int32_t b) {
        return raw[size_t(a)] != raw[size_t(b)] ? raw[size_t(a)] > raw[size_t(b)] : a < b;
      });
      for (size_t i = 0; i < k; ++i) ev.top.push_back(entry(ids[i]));
    }
  }

  s.tokens.push_back(id);
  ++s.generated;
  bool stopped = false;
  ev.text = s.output.push(id, stopped);
  {
    std::lock_guard lock(mu);
    ++st.generated_tokens;
    if (s.generated == 1) observe(st.time_to_first_token, seconds(now - s.submitted));
    else observe(st.inter_token_latency, seconds(now - s.last_token));
  }
  if (s.generated == 1) s.first_token = now;
  s.last_token = now;
  send(s, ev);

  if (s.failed) return Outcome{FinishReason::Error, {}, s.failure};
  if (stopped) return Outcome{FinishReason::Stop};  // nothing after the stop string
  // A complete constrained value ends the text as an end-of-generation token would.
  if (s.constraint && s.constraint->complete()) return Outcome{FinishReason::Stop, s.output.finish()};
  // The context is full when the token just sampled could not be fed.
  if ((r.max_tokens > 0 && s.generated >= r.max_tokens) || int64_t(s.tokens.size()) > ctx)
    return Outcome{FinishReason::Length, s.output.finish()};
  return std::nullopt;
}

void Engine::Impl::send(Sequence& s, const Event& ev) {
  try {
    s.on_event(ev);
  } catch (const std::exception& e) {
    s.failed = true;
    s.failure = fmt::format("[engine] the event callback threw: {}", e.what());
  } catch (...) {
    s.failed = true;
    s.failure = "[engine] the event callback threw";
  }
}

void Engine::Impl::finish(std::unique_ptr<Sequence> s, FinishReason reason, std::string text, std::string error) {
  const auto now = Clock::now();
  Event ev;
  ev.kind = Event::Kind::Finished;
  ev.reason = reason;
  ev.text = std::move(text);
  ev.error = std::move(error);
  ev.usage = {.prompt_tokens = s->n_prompt,
              .cached_prompt_tokens = s->cached_prompt_tokens,
              .completion_tokens = s->generated};
  if (s->scheduled_once) ev.queue_seconds = seconds(s->first_scheduled - s->submitted);
  if (s->generated > 0) ev.first_token_seconds = seconds(s->first_token - s->submitted);
  ev.total_seconds = seconds(now - s->submitted);
  {
    std::lock_guard lock(mu);
    switch (reason) {
      case FinishReason::Stop: ++st.finished_stop; break;
      case FinishReason::Length: ++st.finished_length; break;
      case FinishReason::Cancelled: ++st.finished_cancelled; break;
      case FinishReason::Timeout: ++st.finished_timeout; break;
      case FinishReason::Error: ++st.finished_error; break;
    }
  }
  // Its blocks are released already: a client that reads stats() after the
  // last Finished event sees them free.
  publish_gauges();
  if (!s->failed) send(*s, ev);  // a callback that threw is not called again
}

void Engine::Impl::publish_gauges() {
  std::lock_guard lock(mu);
  sched_waiting = sched->waiting();
  st.running = sched->running();
  st.waiting = sched_waiting + int64_t(inbox.size());
  // Blocks some sequence references. Cached prefix blocks nobody holds are
  // counted as free: the allocator hands them out (evicting) on demand.
  st.kv_blocks_used = sched->pool().used();
  st.prompt_tokens = sched->admitted_prompt_tokens();
  st.prefix_cache_hit_tokens = sched->prefix_hit_tokens();
  st.preemptions = sched->preemptions();
}

Engine::Engine(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Engine::~Engine() = default;

std::shared_ptr<RequestHandle> Engine::submit(Request request, std::function<void(const Event&)> on_event) {
  return impl_->submit(std::move(request), std::move(on_event));
}

const tokenizer::Tokenizer& Engine::tokenizer() const { return *impl_->tok; }
const model::ModelConfig& Engine::config() const { return impl_->model->config(); }
const format::Metadata& Engine::metadata() const { return impl_->source->metadata(); }
const std::string& Engine::model_path() const { return impl_->model_path; }
int64_t Engine::ctx_size() const { return impl_->ctx; }
std::shared_ptr<const sample::TokenTable> Engine::token_table() const { return impl_->table; }

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->st;
}

}  // namespace loom::engine
