#include "loom/serve/metrics.h"

#include <fmt/format.h>

namespace loom::serve {

namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void scalar(std::string& out, std::string_view name, std::string_view type, std::string_view help, double value) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

void histogram(std::string& out, std::string_view name, std::string_view help, const engine::Histogram& h) {
  header(out, name, "histogram", help);
  for (size_t i = 0; i < h.bounds.size() && i < h.counts.size(); ++i)
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], h.counts[i]);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, h.count);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, h.sum, name, h.count);
}

}  // namespace

void ServerMetrics::count_request(std::string_view endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{std::string(endpoint), status}];
}

void ServerMetrics::observe_request_seconds(double s) {
  std::lock_guard lock(mu_);
  mean_seconds_ = mean_seconds_ == 0 ? s : 0.9 * mean_seconds_ + 0.1 * s;  // recent requests weigh most
}

double ServerMetrics::mean_request_seconds() const {
  std::lock_guard lock(mu_);
  return mean_seconds_;
}

std::string ServerMetrics::prometheus(const engine::EngineStats& s) const {
  std::string out;
  header(out, "loom_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_)
      out += fmt::format("loom_http_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
  }
  header(out, "loom_requests_finished_total", "counter", "Generation requests finished, by reason.");
  const std::pair<const char*, uint64_t> reasons[] = {{"stop", s.finished_stop},
                                                      {"length", s.finished_length},
                                                      {"cancelled", s.finished_cancelled},
                                                      {"timeout", s.finished_timeout},
                                                      {"error", s.finished_error}};
  for (const auto& [reason, n] : reasons) out += fmt::format("loom_requests_finished_total{{reason=\"{}\"}} {}\n", reason, n);
  scalar(out, "loom_client_disconnects_total", "counter",
         "Requests cancelled because the client went away before the answer was complete.", double(disconnects_.load()));
  scalar(out, "loom_requests_generating", "gauge", "Completion requests being answered by the HTTP threads.",
         double(generating_.load()));
  scalar(out, "loom_requests_running", "gauge", "Sequences in the running batch.", double(s.running));
  scalar(out, "loom_requests_waiting", "gauge", "Requests in the queue, waiting for a running slot.", double(s.waiting));
  scalar(out, "loom_prompt_tokens_total", "counter", "Prompt tokens of finished and running requests.",
         double(s.prompt_tokens));
  scalar(out, "loom_generation_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens));
  scalar(out, "loom_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens served from the prefix cache instead of being computed.", double(s.prefix_cache_hit_tokens));
  scalar(out, "loom_kv_cache_blocks_total", "gauge", "KV cache blocks.", double(s.kv_blocks_total));
  scalar(out, "loom_kv_cache_blocks_used", "gauge", "KV cache blocks held by sequences.", double(s.kv_blocks_used));
  scalar(out, "loom_kv_cache_blocks_free", "gauge", "KV cache blocks free.", double(s.kv_blocks_total - s.kv_blocks_used));
  histogram(out, "loom_time_to_first_token_seconds", "Seconds from a request's arrival to its first generated token.",
            s.time_to_first_token);
  histogram(out, "loom_inter_token_latency_seconds", "Seconds between consecutive generated tokens of a request.",
            s.inter_token_latency);
  return out;
}

}  // namespace loom::serve
