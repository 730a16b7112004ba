#include "server/metrics.h"

#include <cstdio>
#include <cstdlib>

namespace tessera {

namespace {

// Shortest decimal that reads back as the same double ("0.005", not "0.0050000000000000001").
std::string num(double v) {
  char buf[64];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void metric(std::string& out, const char* name, const char* type, const char* help,
            const std::string& value) {
  out += std::string("# HELP ") + name + " " + help + "\n";
  out += std::string("# TYPE ") + name + " " + type + "\n";
  out += std::string(name) + " " + value + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  std::lock_guard<std::mutex> lk(mu_);
  ++counts_[b];
  sum_ += v;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard<std::mutex> lk(mu_);
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t b = 0; b < bounds_.size(); ++b) {
    cum += counts_[b];
    out += name + "_bucket{le=\"" + num(bounds_[b]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
             10.0, 20.0, 40.0, 80.0}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
            1.0, 2.5, 5.0, 10.0}) {}

void ServerMetrics::count_response(int status) {
  if (status < 400)
    ++n_ok_;
  else if (status < 500)
    ++n_client_error_;
  else
    ++n_server_error_;
}

std::string ServerMetrics::render(const EngineMetrics& m) const {
  std::string out;
  metric(out, "tessera_requests_running", "gauge", "Requests in the running batch.",
         std::to_string(m.n_running));
  metric(out, "tessera_requests_waiting", "gauge", "Requests waiting to be scheduled.",
         std::to_string(m.n_waiting));
  metric(out, "tessera_kv_blocks_used", "gauge", "KV cache blocks in use.",
         std::to_string(m.kv_blocks_used));
  metric(out, "tessera_kv_blocks_total", "gauge", "KV cache blocks in the pool.",
         std::to_string(m.kv_blocks_total));
  metric(out, "tessera_kv_block_size", "gauge", "Tokens per KV cache block.",
         std::to_string(m.block_size));
  const double hit_rate = m.prefix_query_tokens > 0 ? static_cast<double>(m.prefix_hit_tokens) /
                                                          static_cast<double>(m.prefix_query_tokens)
                                                    : 0.0;
  metric(out, "tessera_prefix_cache_hit_rate", "gauge",
         "Prompt tokens served by the prefix cache / prompt tokens looked up.", num(hit_rate));
  metric(out, "tessera_prefix_cache_queries_total", "counter",
         "Prompt tokens looked up in the prefix cache.", std::to_string(m.prefix_query_tokens));
  metric(out, "tessera_prefix_cache_hits_total", "counter",
         "Prompt tokens served by the prefix cache.", std::to_string(m.prefix_hit_tokens));
  metric(out, "tessera_prompt_tokens_total", "counter", "Prompt tokens processed.",
         std::to_string(m.prompt_tokens_total));
  metric(out, "tessera_generation_tokens_total", "counter", "Tokens generated.",
         std::to_string(m.generation_tokens_total));
  metric(out, "tessera_requests_finished_total", "counter", "Engine requests finished.",
         std::to_string(m.requests_finished));
  metric(out, "tessera_preemptions_total", "counter", "Requests preempted for KV space.",
         std::to_string(m.preemptions_total));
  metric(out, "tessera_engine_steps_total", "counter", "Engine steps run.",
         std::to_string(m.steps_total));
  if (m.spec_enabled) {
    metric(out, "tessera_spec_proposed_tokens_total", "counter",
           "Speculative decoding: proposed tokens verified.", std::to_string(m.spec_proposed));
    metric(out, "tessera_spec_accepted_tokens_total", "counter",
           "Speculative decoding: proposed tokens accepted.", std::to_string(m.spec_accepted));
    metric(out, "tessera_spec_verifications_total", "counter",
           "Speculative decoding: sequence-steps that verified proposals.",
           std::to_string(m.spec_rounds));
    metric(out, "tessera_spec_acceptance_rate", "gauge",
           "Speculative decoding: accepted / proposed tokens.",
           num(m.spec_proposed > 0 ? static_cast<double>(m.spec_accepted) / m.spec_proposed : 0.0));
    metric(out, "tessera_spec_mean_accepted_length", "gauge",
           "Speculative decoding: tokens emitted per verification (accepted + 1).",
           num(m.spec_rounds > 0 ? static_cast<double>(m.spec_emitted) / m.spec_rounds : 0.0));
  }

  out += "# HELP tessera_http_responses_total API responses by status class.\n";
  out += "# TYPE tessera_http_responses_total counter\n";
  out += "tessera_http_responses_total{class=\"2xx\"} " + std::to_string(n_ok_.load()) + "\n";
  out += "tessera_http_responses_total{class=\"4xx\"} " + std::to_string(n_client_error_.load()) +
         "\n";
  out += "tessera_http_responses_total{class=\"5xx\"} " + std::to_string(n_server_error_.load()) +
         "\n";

  metric(out, "tessera_requests_aborted_by_client_total", "counter",
         "Generations aborted because the client disconnected before the end.",
         std::to_string(n_client_aborts_.load()));

  ttft_.render("tessera_time_to_first_token_seconds",
               "Time from receiving a request to its first generated token.", out);
  itl_.render("tessera_inter_token_latency_seconds",
              "Time between consecutive generated tokens of a request.", out);
  return out;
}

}  // namespace tessera
