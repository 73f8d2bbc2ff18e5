// RequestStream: hands one request's engine events to the HTTP thread that
// answers it. The engine callback only appends to a queue under a mutex and
// signals a condition variable, so the engine thread never waits for a slow
// client; the HTTP thread takes the events out at its own pace.
//
//   auto s = std::make_shared<RequestStream>();
//   s->attach(engine.submit(req, [s](const engine::Event& ev) { s->push(ev); }));
//   std::vector<engine::Event> evs;
//   if (s->wait(evs, 100ms)) ...                        // format and send evs; Finished comes last
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "loom/engine/engine.h"

namespace loom::serve {

class RequestStream {
 public:
  // Engine thread: queues the event (a copy) and wakes the waiting reader.
  void push(const engine::Event& ev) {
    {
      std::lock_guard lock(mu_);
      if (ev.kind == engine::Event::Kind::Finished) finished_ = true;
      events_.push_back(ev);
    }
    cv_.notify_one();
  }

  // HTTP thread: moves the queued events to `out` (cleared first), waiting up
  // to `timeout` for the first one. Returns false if none came in time.
  bool wait(std::vector<engine::Event>& out, std::chrono::milliseconds timeout) {
    out.clear();
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
    for (auto& e : events_) out.push_back(std::move(e));
    events_.clear();
    return true;
  }

  void attach(std::shared_ptr<engine::RequestHandle> handle) {
    std::lock_guard lock(mu_);
    handle_ = std::move(handle);
  }

  // Stops the request unless the engine already finished it; its KV blocks
  // are freed at the engine's next step. Safe to call more than once.
  void cancel() {
    std::shared_ptr<engine::RequestHandle> h;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      h = handle_;
    }
    if (h) h->cancel();
  }

  // True once the engine has queued the Finished event (it may not have been read yet).
  bool finished() const {
    std::lock_guard lock(mu_);
    return finished_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<engine::Event> events_;
  std::shared_ptr<engine::RequestHandle> handle_;
  bool finished_ = false;
};

}  // namespace loom::serve
