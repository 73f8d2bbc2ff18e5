// ServerMetrics: the server's own counters (HTTP requests by endpoint and
// status code, client disconnects, requests in flight), rendered with the
// engine's statistics as Prometheus text for GET /metrics.
//
//   metrics.count_request("/v1/chat/completions", 200);
//   std::string text = metrics.prometheus(engine.stats());
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "loom/engine/engine.h"

namespace loom::serve {

class ServerMetrics {
 public:
  // `endpoint` is a route of the server, or "other" (unknown paths must not
  // each make a new time series).
  void count_request(std::string_view endpoint, int status);
  void count_disconnect() { disconnects_.fetch_add(1); }
  void generation_started() { generating_.fetch_add(1); }
  void generation_ended() { generating_.fetch_sub(1); }
  // Mean seconds a completion request takes, for Retry-After.
  void observe_request_seconds(double s);
  double mean_request_seconds() const;

  std::string prometheus(const engine::EngineStats& s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  double mean_seconds_ = 0;
  std::atomic<uint64_t> disconnects_{0};
  std::atomic<int64_t> generating_{0};
};

}  // namespace loom::serve
