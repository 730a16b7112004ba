// Prometheus metrics: the engine's gauges and counters (read from Engine::metrics() at
// scrape time) and latency histograms measured on the HTTP side, where a client sees them.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace tessera {

// Cumulative histogram with fixed upper bounds (seconds), Prometheus-style.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // The `_bucket`, `_sum` and `_count` lines of metric `name`.
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // [bounds_.size() + 1], the last is +Inf; not cumulative
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void observe_ttft(double seconds) { ttft_.observe(seconds); }
  void observe_itl(double seconds) { itl_.observe(seconds); }
  void count_response(int status);  // every HTTP answer of the API routes
  // A generation given up because its client disconnected before the end (a closed
  // browser tab, a stop button): its engine request is aborted.
  void count_client_abort() { ++n_client_aborts_; }

  // The text exposition of everything, engine metrics included.
  std::string render(const EngineMetrics& m) const;

 private:
  Histogram ttft_, itl_;
  std::atomic<uint64_t> n_ok_{0}, n_client_error_{0}, n_server_error_{0};
  std::atomic<uint64_t> n_client_aborts_{0};
};

}  // namespace tessera
