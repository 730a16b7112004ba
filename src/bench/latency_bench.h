// Latency benchmark of one model in this process (`tessera bench -m MODEL`), in the spirit
// of llama.cpp's llama-bench:
//
//   ppN  one forward pass of N prompt tokens into an empty KV cache; t/s = N / time
//   tgN  a 1-token prompt (not timed), then N single-token decode steps; t/s = N / time
//
// Each test runs once untimed (warm-up), then `repetitions` times; t/s is averaged over
// the repetitions (mean and sample standard deviation of the per-repetition t/s).
//
// Also: a STREAM-triad memory-bandwidth probe and the decode roofline, i.e. the weight
// bytes one generated token reads (Model::weight_stats().decode_bytes) divided by that
// bandwidth, an upper bound on tg t/s for a memory-bound decoder.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tessera {
class Model;
}

namespace tessera::bench {

struct MeanStd {
  double mean = 0, stddev = 0;  // sample standard deviation (n - 1); 0 for fewer than 2
};
MeanStd mean_stddev(const std::vector<double>& v);

// Peak resident set size of this process in bytes (VmHWM of /proc/self/status); 0 when
// unknown. parse_vm_hwm reads it from the text of such a file.
uint64_t peak_rss_bytes();
uint64_t parse_vm_hwm(const std::string& proc_status);

// --- memory bandwidth ---

struct BandwidthConfig {
  int n_threads = 1;
  // Elements (doubles) per array; 0: 16 Mi (128 MiB per array, 384 MiB in all) or 4x the
  // last-level cache, whichever is larger.
  int64_t n_elements = 0;
  int iterations = 10;
};
struct BandwidthResult {
  int n_threads = 0;
  int64_t n_elements = 0;
  uint64_t llc_bytes = 0;  // last-level cache size found (0: unknown)
  double best_gbs = 0;     // best iteration: 3 * 8 * n / time, 1e9 bytes/s
  MeanStd gbs;             // over the iterations
};
// a[i] = b[i] + s * c[i] over three arrays of doubles split among n_threads threads;
// bytes counted as STREAM does (two reads and one write per element).
BandwidthResult measure_bandwidth(const BandwidthConfig& cfg);
nlohmann::json bandwidth_json(const BandwidthResult& b);
// Size of the largest CPU cache this machine reports (sysfs); 0 when unknown.
uint64_t last_level_cache_bytes();

// --- latency tests ---

struct TestResult {
  std::string name;  // "pp512", "tg128"
  int n_prompt = 0, n_gen = 0;
  std::vector<double> seconds;  // per repetition
  std::vector<double> tps;      // per repetition
  MeanStd ts;                   // tokens/s over the repetitions
};

struct LatencyConfig {
  std::vector<int> n_prompt = {512};
  std::vector<int> n_gen = {128};
  int repetitions = 5;
  uint64_t seed = 1;  // of the random token ids
};

// Runs every pp test, then every tg test (sizes <= 0 are skipped), with `model` (whose
// thread count was fixed when it was loaded). Progress goes to stderr unless quiet.
std::vector<TestResult> run_latency_tests(Model& model, const LatencyConfig& cfg, bool quiet);

struct Roofline {
  uint64_t decode_bytes = 0;  // weight bytes per generated token
  double bandwidth_gbs = 0;
  double max_tps = 0;  // bandwidth / decode_bytes
};
Roofline decode_roofline(uint64_t decode_bytes, double bandwidth_gbs);

struct LatencyReport {
  std::string model_path, model_name, arch;
  uint64_t n_params = 0, n_bytes = 0;
  uint64_t decode_bytes = 0;  // Model::weight_stats().decode_bytes
  std::string weight_type;    // type of most weight bytes ("Q4_0", "mixed" ...)
  int n_threads = 0;
  std::vector<TestResult> tests;
  std::optional<BandwidthResult> bandwidth;
  std::optional<Roofline> roofline;  // with a bandwidth figure
  uint64_t peak_rss = 0;
  double load_seconds = 0;
};

// llama-bench-like table: model | size | params | threads | test | t/s, then the
// bandwidth, roofline and peak RSS lines.
std::string format_latency_table(const LatencyReport& r);
nlohmann::json latency_json(const LatencyReport& r);

}  // namespace tessera::bench
