// /metrics: the server's counters and the engine's statistics as Prometheus
// text exposition (version 0.0.4), checked line by line against hand-written
// expectations.
#include <gtest/gtest.h>

#include "loom/serve/metrics.h"

namespace loom::serve {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(Metrics, PrometheusText) {
  ServerMetrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/completions", 429);
  m.count_disconnect();
  m.generation_started();

  engine::EngineStats s;
  s.running = 2;
  s.waiting = 3;
  s.kv_blocks_total = 100;
  s.kv_blocks_used = 40;
  s.prompt_tokens = 1000;
  s.generated_tokens = 250;
  s.prefix_cache_hit_tokens = 64;
  s.finished_stop = 5;
  s.finished_cancelled = 1;
  s.time_to_first_token = {.bounds = {0.1, 1}, .counts = {1, 3, 4}, .sum = 2.5, .count = 4};
  s.inter_token_latency = {.bounds = {0.01}, .counts = {10, 12}, .sum = 0.2, .count = 12};

  const std::string text = m.prometheus(s);
  for (const char* line : {
           "# TYPE loom_http_requests_total counter",
           "loom_http_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 2",
           "loom_http_requests_total{endpoint=\"/v1/completions\",code=\"429\"} 1",
           "loom_requests_finished_total{reason=\"stop\"} 5",
           "loom_requests_finished_total{reason=\"cancelled\"} 1",
           "loom_requests_finished_total{reason=\"length\"} 0",
           "loom_client_disconnects_total 1",
           "loom_requests_generating 1",
           "loom_requests_running 2",
           "# TYPE loom_requests_waiting gauge",
           "loom_requests_waiting 3",
           "loom_prompt_tokens_total 1000",
           "loom_generation_tokens_total 250",
           "loom_prefix_cache_hit_tokens_total 64",
           "loom_kv_cache_blocks_total 100",
           "loom_kv_cache_blocks_used 40",
           "loom_kv_cache_blocks_free 60",
           "# TYPE loom_time_to_first_token_seconds histogram",
           "loom_time_to_first_token_seconds_bucket{le=\"0.1\"} 1",
           "loom_time_to_first_token_seconds_bucket{le=\"1\"} 3",
           "loom_time_to_first_token_seconds_bucket{le=\"+Inf\"} 4",
           "loom_time_to_first_token_seconds_sum 2.5",
           "loom_time_to_first_token_seconds_count 4",
           "loom_inter_token_latency_seconds_bucket{le=\"0.01\"} 10",
           "loom_inter_token_latency_seconds_bucket{le=\"+Inf\"} 12",
           "loom_inter_token_latency_seconds_count 12",
       })
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;
  // Every sample line belongs to a declared metric.
  std::string declared;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      declared = line.substr(7, line.find(' ', 7) - 7);
    } else if (line[0] != '#') {
      EXPECT_EQ(line.rfind(declared, 0), 0u) << line;
    }
  }
}

}  // namespace
}  // namespace loom::serve
