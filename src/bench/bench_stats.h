// Figures of a serving benchmark: per-request timings and their summary.
//
// Definitions (the ones vLLM's `bench serve` uses):
//   TTFT  time to first token = arrival of the first chunk carrying output − send time
//   ITL   inter-token latency = gaps between consecutive chunks carrying output (pooled
//         over all requests)
//   TPOT  time per output token = (e2e − TTFT) / (output_tokens − 1), for requests with
//         more than one output token
//   e2e   end-to-end latency = end of the response − send time
// Percentiles interpolate linearly between order statistics (numpy's default).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tessera::bench {

// What one request measured. Times are seconds relative to the start of the benchmark.
struct RequestResult {
  bool success = false;
  bool rejected = false;  // the server refused it (HTTP 429 or 503)
  int status = 0;         // HTTP status; 0 when no response came
  std::string error;      // why it failed
  double send_time = 0;
  double end_time = 0;
  std::vector<double> chunk_times;  // arrival of each chunk that carried output
  int64_t prompt_tokens = 0;        // from usage, else what was sent (0 if unknown)
  int64_t output_tokens = 0;        // from usage, else the number of output chunks
  bool usage_reported = false;
};

struct RequestTiming {
  double ttft = 0, e2e = 0;
  double tpot = -1;  // < 0: undefined (fewer than 2 output tokens)
  std::vector<double> itl;
};

// Timings of one request from its send time, output-chunk arrivals and end time.
// Requires at least one chunk.
RequestTiming request_timing(double send_time, const std::vector<double>& chunk_times,
                             double end_time, int64_t output_tokens);

// p in [0, 100]; linear interpolation between closest ranks. Empty input gives 0.
double percentile(std::vector<double> values, double p);

struct MetricStats {
  size_t count = 0;
  double mean = 0, std = 0, min = 0, max = 0, median = 0, p90 = 0, p99 = 0;
};
MetricStats metric_stats(const std::vector<double>& values);

struct BenchSummary {
  int64_t num_requests = 0, completed = 0, failed = 0, rejected = 0;
  double duration = 0;  // seconds, from the first send to the last response
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  int64_t unexpected_output_len = 0;  // completed requests whose length != expected
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  // Milliseconds.
  MetricStats ttft, tpot, itl, e2e;
  std::vector<std::string> error_samples;              // a few distinct error messages
  std::vector<std::pair<int, int64_t>> status_counts;  // failed requests by HTTP status
};

// `expected_output_len` <= 0 skips the length check.
BenchSummary summarize(const std::vector<RequestResult>& results, double duration,
                       int64_t expected_output_len);

// vLLM-style text table.
std::string format_report(const BenchSummary& s);
// Every figure, with flat keys as vLLM writes them (mean_ttft_ms, p99_itl_ms, ...), and
// per-request lists.
nlohmann::json summary_json(const BenchSummary& s, const std::vector<RequestResult>& results);

}  // namespace tessera::bench
