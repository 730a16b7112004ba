#include "bench/bench_stats.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

namespace tessera::bench {

RequestTiming request_timing(double send_time, const std::vector<double>& chunk_times,
                             double end_time, int64_t output_tokens) {
  assert(!chunk_times.empty());
  RequestTiming t;
  t.ttft = chunk_times.front() - send_time;
  t.e2e = end_time - send_time;
  for (size_t i = 1; i < chunk_times.size(); ++i)
    t.itl.push_back(chunk_times[i] - chunk_times[i - 1]);
  if (output_tokens > 1) t.tpot = (t.e2e - t.ttft) / static_cast<double>(output_tokens - 1);
  return t;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

MetricStats metric_stats(const std::vector<double>& values) {
  MetricStats m;
  m.count = values.size();
  if (values.empty()) return m;
  const double n = static_cast<double>(values.size());
  m.mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double var = 0;
  for (double v : values) var += (v - m.mean) * (v - m.mean);
  m.std = std::sqrt(var / n);  // population std, as numpy's default
  auto [mn, mx] = std::minmax_element(values.begin(), values.end());
  m.min = *mn;
  m.max = *mx;
  m.median = percentile(values, 50);
  m.p90 = percentile(values, 90);
  m.p99 = percentile(values, 99);
  return m;
}

BenchSummary summarize(const std::vector<RequestResult>& results, double duration,
                       int64_t expected_output_len) {
  BenchSummary s;
  s.num_requests = static_cast<int64_t>(results.size());
  s.duration = duration;
  std::vector<double> ttft, tpot, itl, e2e;
  std::map<int, int64_t> statuses;
  std::set<std::string> seen_errors;
  for (const RequestResult& r : results) {
    if (!r.success) {
      ++s.failed;
      if (r.rejected) ++s.rejected;
      ++statuses[r.status];
      if (s.error_samples.size() < 5 && seen_errors.insert(r.error).second)
        s.error_samples.push_back(r.error);
      continue;
    }
    ++s.completed;
    s.total_input_tokens += r.prompt_tokens;
    s.total_output_tokens += r.output_tokens;
    if (expected_output_len > 0 && r.output_tokens != expected_output_len)
      ++s.unexpected_output_len;
    RequestTiming t = request_timing(r.send_time, r.chunk_times, r.end_time, r.output_tokens);
    ttft.push_back(t.ttft * 1e3);
    e2e.push_back(t.e2e * 1e3);
    if (t.tpot >= 0) tpot.push_back(t.tpot * 1e3);
    for (double g : t.itl) itl.push_back(g * 1e3);
  }
  s.status_counts.assign(statuses.begin(), statuses.end());
  if (duration > 0) {
    s.request_throughput = static_cast<double>(s.completed) / duration;
    s.output_throughput = static_cast<double>(s.total_output_tokens) / duration;
    s.total_token_throughput =
        static_cast<double>(s.total_input_tokens + s.total_output_tokens) / duration;
  }
  s.ttft = metric_stats(ttft);
  s.tpot = metric_stats(tpot);
  s.itl = metric_stats(itl);
  s.e2e = metric_stats(e2e);
  return s;
}

namespace {

void line(std::string& out, const std::string& label, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%-40s %-10s\n", label.c_str(), value.c_str());
  out += buf;
}
std::string num(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}
void header(std::string& out, const std::string& title, char fill) {
  const size_t width = 50;
  const std::string t = title.empty() ? "" : title;
  const size_t left = (width - std::min(width, t.size())) / 2;
  out += std::string(left, fill) + t + std::string(width - left - t.size(), fill) + "\n";
}
void metric(std::string& out, const char* title, const char* abbr, const MetricStats& m) {
  header(out, title, '-');
  line(out, std::string("Mean ") + abbr + " (ms):", num(m.mean));
  line(out, std::string("Median ") + abbr + " (ms):", num(m.median));
  line(out, std::string("P99 ") + abbr + " (ms):", num(m.p99));
}

nlohmann::json metric_json(const MetricStats& m) {
  return {{"count", m.count},   {"mean", m.mean},  {"std", m.std}, {"min", m.min}, {"max", m.max},
          {"median", m.median}, {"p50", m.median}, {"p90", m.p90}, {"p99", m.p99}};
}

}  // namespace

std::string format_report(const BenchSummary& s) {
  std::string out;
  header(out, " Serving Benchmark Result ", '=');
  line(out, "Successful requests:", std::to_string(s.completed));
  line(out, "Failed requests:", std::to_string(s.failed));
  if (s.rejected) line(out, "  of which rejected (429/503):", std::to_string(s.rejected));
  line(out, "Benchmark duration (s):", num(s.duration));
  line(out, "Total input tokens:", std::to_string(s.total_input_tokens));
  line(out, "Total generated tokens:", std::to_string(s.total_output_tokens));
  line(out, "Request throughput (req/s):", num(s.request_throughput));
  line(out, "Output token throughput (tok/s):", num(s.output_throughput));
  line(out, "Total token throughput (tok/s):", num(s.total_token_throughput));
  metric(out, "Time to First Token", "TTFT", s.ttft);
  metric(out, "Time per Output Token (excl. 1st token)", "TPOT", s.tpot);
  metric(out, "Inter-token Latency", "ITL", s.itl);
  metric(out, "End-to-end Latency", "E2EL", s.e2e);
  header(out, "", '=');
  if (s.unexpected_output_len)
    out += "warning: " + std::to_string(s.unexpected_output_len) +
           " completed requests did not produce the requested number of tokens\n";
  if (s.failed) {
    out += "failures by HTTP status (0 = no response):";
    for (auto [status, n] : s.status_counts)
      out += ' ' + std::to_string(status) + 'x' + std::to_string(n);
    out += "\n";
    for (const std::string& e : s.error_samples) out += "  error: " + e + "\n";
  }
  return out;
}

nlohmann::json summary_json(const BenchSummary& s, const std::vector<RequestResult>& results) {
  nlohmann::json j;
  j["num_prompts"] = s.num_requests;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["rejected"] = s.rejected;
  j["duration"] = s.duration;
  j["total_input_tokens"] = s.total_input_tokens;
  j["total_output_tokens"] = s.total_output_tokens;
  j["unexpected_output_len"] = s.unexpected_output_len;
  j["request_throughput"] = s.request_throughput;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  const std::pair<const char*, const MetricStats*> metrics[] = {
      {"ttft", &s.ttft}, {"tpot", &s.tpot}, {"itl", &s.itl}, {"e2el", &s.e2e}};
  for (auto [name, m] : metrics) {
    const std::string n = name;
    j["mean_" + n + "_ms"] = m->mean;
    j["median_" + n + "_ms"] = m->median;
    j["std_" + n + "_ms"] = m->std;
    j["p50_" + n + "_ms"] = m->median;
    j["p90_" + n + "_ms"] = m->p90;
    j["p99_" + n + "_ms"] = m->p99;
    j["stats_ms"][n] = metric_json(*m);
  }
  nlohmann::json status_counts = nlohmann::json::object();
  for (auto [status, n] : s.status_counts) status_counts[std::to_string(status)] = n;
  j["failed_by_status"] = status_counts;
  j["error_samples"] = s.error_samples;

  // Per request, in the order they were issued.
  nlohmann::json reqs = nlohmann::json::array();
  for (const RequestResult& r : results) {
    nlohmann::json q = {{"success", r.success},
                        {"status", r.status},
                        {"send_time_s", r.send_time},
                        {"prompt_tokens", r.prompt_tokens},
                        {"output_tokens", r.output_tokens}};
    if (r.success) {
      RequestTiming t = request_timing(r.send_time, r.chunk_times, r.end_time, r.output_tokens);
      q["ttft_ms"] = t.ttft * 1e3;
      q["e2el_ms"] = t.e2e * 1e3;
      if (t.tpot >= 0) q["tpot_ms"] = t.tpot * 1e3;
      std::vector<double> itl_ms;
      for (double g : t.itl) itl_ms.push_back(g * 1e3);
      q["itl_ms"] = itl_ms;
    } else {
      q["rejected"] = r.rejected;
      q["error"] = r.error;
    }
    reqs.push_back(std::move(q));
  }
  j["requests"] = std::move(reqs);
  return j;
}

}  // namespace tessera::bench
