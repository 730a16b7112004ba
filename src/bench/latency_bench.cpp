// Latency benchmark, bandwidth probe and decode roofline. See latency_bench.h.
#include "bench/latency_bench.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "engine/sequence_runner.h"
#include "models/model.h"

namespace tessera::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "32768K" / "1024K" / "2M" (sysfs cache sizes) -> bytes; 0 when unparsable.
uint64_t parse_cache_size(const std::string& s) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return 0;
  switch (*end) {
    case 'K':
      return v << 10;
    case 'M':
      return v << 20;
    case 'G':
      return v << 30;
    default:
      return v;
  }
}

std::string fmt(const char* f, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

std::string human_bytes(uint64_t n) {
  if (n >= (1ull << 30)) return fmt("%.2f GiB", n / double(1ull << 30));
  if (n >= (1ull << 20)) return fmt("%.2f MiB", n / double(1ull << 20));
  return fmt("%.2f KiB", n / 1024.0);
}

std::string human_count(uint64_t n) {
  if (n >= 1000000000ull) return fmt("%.2f B", n / 1e9);
  if (n >= 1000000ull) return fmt("%.2f M", n / 1e6);
  return fmt("%.2f K", n / 1e3);
}

}  // namespace

MeanStd mean_stddev(const std::vector<double>& v) {
  MeanStd r;
  if (v.empty()) return r;
  double s = 0;
  for (double x : v) s += x;
  r.mean = s / static_cast<double>(v.size());
  if (v.size() < 2) return r;
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return r;
}

uint64_t parse_vm_hwm(const std::string& status) {
  std::istringstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream f(line.substr(6));
    uint64_t v = 0;
    std::string unit;
    if (!(f >> v)) return 0;
    f >> unit;
    return unit == "kB" || unit.empty() ? v * 1024 : 0;
  }
  return 0;
}

uint64_t peak_rss_bytes() {
  return parse_vm_hwm(read_text("/proc/self/status"));
}

uint64_t last_level_cache_bytes() {
  namespace fs = std::filesystem;
  uint64_t best = 0;
  std::error_code ec;
  const fs::path dir("/sys/devices/system/cpu/cpu0/cache");
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind("index", 0) != 0) continue;
    best = std::max(best, parse_cache_size(read_text((e.path() / "size").string())));
  }
  return best;
}

BandwidthResult measure_bandwidth(const BandwidthConfig& cfg) {
  BandwidthResult r;
  r.n_threads = std::max(1, cfg.n_threads);
  r.llc_bytes = last_level_cache_bytes();
  int64_t n = cfg.n_elements;
  if (n <= 0) n = std::max<int64_t>(int64_t{16} << 20, 4 * static_cast<int64_t>(r.llc_bytes) / 8);
  r.n_elements = n;
  struct Free {
    void operator()(double* p) const { std::free(p); }
  };
  // On 2 MiB pages where the kernel grants them, as the model's weights (gguf.cpp): the
  // probe measures what the machine can stream, not a 4 KiB page walk.
  auto alloc = [n] {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t size = ((static_cast<size_t>(n) * 8 + kHuge - 1) / kHuge) * kHuge;
    void* p = std::aligned_alloc(kHuge, size);
    if (!p) throw Error("bandwidth probe: out of memory");
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    return std::unique_ptr<double, Free>(static_cast<double*>(p));
  };
  auto a = alloc(), b = alloc(), c = alloc();
  double *pa = a.get(), *pb = b.get(), *pc = c.get();
  ThreadPool pool(r.n_threads);
  // One contiguous range per thread, as STREAM's static OpenMP schedule; the same split
  // for the first touch, so pages sit near the thread that streams them.
  const int64_t grain = (n + r.n_threads - 1) / r.n_threads;
  pool.parallel_for(
      n,
      [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) pa[i] = 0.0, pb[i] = 1.0, pc[i] = 2.0;
      },
      grain);
  const double s = 3.0;
  auto triad = [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) pa[i] = pb[i] + s * pc[i];
  };
  pool.parallel_for(n, triad, grain);  // warm-up
  std::vector<double> gbs;
  const double bytes = 3.0 * 8.0 * static_cast<double>(n);
  for (int it = 0; it < std::max(1, cfg.iterations); ++it) {
    const auto t0 = Clock::now();
    pool.parallel_for(n, triad, grain);
    gbs.push_back(bytes / seconds_since(t0) / 1e9);
  }
  volatile double sink = pa[n / 2];  // keep the stores
  (void)sink;
  r.best_gbs = *std::max_element(gbs.begin(), gbs.end());
  r.gbs = mean_stddev(gbs);
  return r;
}

std::vector<TestResult> run_latency_tests(Model& model, const LatencyConfig& cfg, bool quiet) {
  const int n_vocab = model.config().n_vocab;
  std::mt19937_64 rng(cfg.seed);
  std::uniform_int_distribution<int32_t> tok(0, n_vocab - 1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = tok(rng);
    return t;
  };
  std::vector<float> logits(n_vocab);

  // One timed run of a test with a fresh (empty) cache; returns seconds.
  auto run_pp = [&](SequenceRunner& sr, int n) {
    const std::vector<int32_t> tokens = random_tokens(n);
    sr.reset();
    const auto t0 = Clock::now();
    sr.eval(tokens, {n - 1}, logits.data(), n);
    return seconds_since(t0);
  };
  auto run_tg = [&](SequenceRunner& sr, int n) {
    const std::vector<int32_t> tokens = random_tokens(n + 1);
    sr.reset();
    sr.eval({tokens[0]}, {0}, logits.data(), 1);  // the 1-token prompt, not timed
    const auto t0 = Clock::now();
    for (int i = 1; i <= n; ++i) sr.eval({tokens[i]}, {0}, logits.data(), 1);
    return seconds_since(t0);
  };

  std::vector<TestResult> out;
  uint64_t n_runs = 0;  // a warm-up and the repetitions of each test
  for (const std::vector<int>* sizes : {&cfg.n_prompt, &cfg.n_gen})
    for (int v : *sizes) n_runs += v > 0 ? 1 + cfg.repetitions : 0;
  Progress progress("bench", n_runs, "runs");  // cmd_bench turns it off with -q
  auto log = [&](const char* fmt, auto... args) {
    if (quiet) return;
    char buf[256];
    std::snprintf(buf, sizeof buf, fmt, args...);
    progress.println(buf);
  };
  auto run_test = [&](int n_prompt, int n_gen) {
    TestResult t;
    t.n_prompt = n_prompt;
    t.n_gen = n_gen;
    t.name = n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
    const int n = n_prompt > 0 ? n_prompt : n_gen;
    // The context holds what the test needs, as llama-bench's n_prompt + n_gen.
    SequenceRunner sr(model, n_prompt > 0 ? n_prompt : n_gen + 1);
    auto once = [&] { return n_prompt > 0 ? run_pp(sr, n) : run_tg(sr, n); };
    log("%s: warm-up", t.name.c_str());
    progress.set_note(t.name + " warm-up");
    once();
    progress.add();
    for (int r = 0; r < cfg.repetitions; ++r) {
      progress.set_note(t.name + " " + std::to_string(r + 1) + "/" +
                        std::to_string(cfg.repetitions));
      const double s = once();
      t.seconds.push_back(s);
      t.tps.push_back(n / s);
      progress.add();
      log("%s: repetition %d/%d: %.3f s, %.2f t/s", t.name.c_str(), r + 1, cfg.repetitions, s,
          n / s);
    }
    t.ts = mean_stddev(t.tps);
    out.push_back(std::move(t));
  };
  for (int p : cfg.n_prompt)
    if (p > 0) run_test(p, 0);
  for (int g : cfg.n_gen)
    if (g > 0) run_test(0, g);
  progress.finish();
  return out;
}

nlohmann::json bandwidth_json(const BandwidthResult& b) {
  return {{"n_threads", b.n_threads}, {"array_bytes", b.n_elements * 8},
          {"llc_bytes", b.llc_bytes}, {"best_gbs", b.best_gbs},
          {"mean_gbs", b.gbs.mean},   {"stddev_gbs", b.gbs.stddev}};
}

Roofline decode_roofline(uint64_t decode_bytes, double bandwidth_gbs) {
  Roofline r;
  r.decode_bytes = decode_bytes;
  r.bandwidth_gbs = bandwidth_gbs;
  r.max_tps = decode_bytes > 0 ? bandwidth_gbs * 1e9 / static_cast<double>(decode_bytes) : 0;
  return r;
}

std::string format_latency_table(const LatencyReport& r) {
  // "llama 135M Q4_1", as llama-bench names models.
  const std::string label = r.n_params >= 1000000000ull ? fmt("%.1fB", r.n_params / 1e9)
                            : r.n_params >= 1000000ull  ? fmt("%.0fM", r.n_params / 1e6)
                                                        : fmt("%.0fK", r.n_params / 1e3);
  const std::string model = r.arch + " " + label + " " + r.weight_type;
  std::vector<std::vector<std::string>> rows = {
      {"model", "size", "params", "threads", "test", "t/s"}};
  for (const TestResult& t : r.tests)
    rows.push_back({model, human_bytes(r.n_bytes), human_count(r.n_params),
                    std::to_string(r.n_threads), t.name,
                    fmt("%.2f ± %.2f", t.ts.mean, t.ts.stddev)});
  std::vector<size_t> w(6, 0);
  auto width = [](const std::string& s) {  // display width: count UTF-8 lead bytes
    size_t n = 0;
    for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
    return n;
  };
  for (const auto& row : rows)
    for (size_t i = 0; i < 6; ++i) w[i] = std::max(w[i], width(row[i]));
  std::string s;
  auto emit = [&](const std::vector<std::string>& row) {
    s += "|";
    for (size_t i = 0; i < 6; ++i) {
      const std::string pad(w[i] - width(row[i]), ' ');
      // Text columns left-aligned, figures right-aligned.
      const bool left = i == 0 || i == 4;
      s += ' ';
      s += left ? row[i] : pad;
      s += left ? pad : row[i];
      s += " |";
    }
    s += "\n";
  };
  emit(rows[0]);
  s += "|";
  for (size_t i = 0; i < 6; ++i) {
    const bool left = i == 0 || i == 4;
    s += ' ';
    s.append(w[i] - (left ? 0 : 1), '-');
    s += left ? " |" : ": |";
  }
  s += "\n";
  for (size_t i = 1; i < rows.size(); ++i) emit(rows[i]);
  s += "\n";
  if (r.bandwidth)
    s += fmt("memory bandwidth (triad, %.0f threads): ", r.bandwidth->n_threads) +
         fmt("%.2f GB/s best, %.2f", r.bandwidth->best_gbs, r.bandwidth->gbs.mean) +
         fmt(" ± %.2f GB/s mean\n", r.bandwidth->gbs.stddev);
  if (r.roofline) {
    s += "decode roofline: " + human_bytes(r.roofline->decode_bytes) +
         fmt(" of weights per token -> at most %.2f t/s\n", r.roofline->max_tps);
    for (const TestResult& t : r.tests)
      if (t.n_gen > 0 && r.roofline->max_tps > 0)
        s += "  " + t.name +
             fmt(": %.1f%% of the roofline\n", 100.0 * t.ts.mean / r.roofline->max_tps);
  }
  s += "peak RSS: " + human_bytes(r.peak_rss) + "\n";
  return s;
}

nlohmann::json latency_json(const LatencyReport& r) {
  using nlohmann::json;
  json j;
  j["model"] = r.model_path;
  j["model_name"] = r.model_name;
  j["arch"] = r.arch;
  j["weight_type"] = r.weight_type;
  j["model_size"] = r.n_bytes;
  j["model_n_params"] = r.n_params;
  j["n_threads"] = r.n_threads;
  j["load_seconds"] = r.load_seconds;
  j["tests"] = json::array();
  for (const TestResult& t : r.tests) {
    json e;
    e["name"] = t.name;
    e["n_prompt"] = t.n_prompt;
    e["n_gen"] = t.n_gen;
    e["avg_ts"] = t.ts.mean;
    e["stddev_ts"] = t.ts.stddev;
    e["samples_ts"] = t.tps;
    std::vector<int64_t> ns;
    for (double s : t.seconds) ns.push_back(static_cast<int64_t>(std::llround(s * 1e9)));
    e["samples_ns"] = ns;
    MeanStd sec = mean_stddev(t.seconds);
    e["avg_ns"] = static_cast<int64_t>(std::llround(sec.mean * 1e9));
    e["stddev_ns"] = static_cast<int64_t>(std::llround(sec.stddev * 1e9));
    if (t.n_gen > 0 && r.roofline && r.roofline->max_tps > 0)
      e["roofline_fraction"] = t.ts.mean / r.roofline->max_tps;
    j["tests"].push_back(e);
  }
  if (r.bandwidth) {
    j["bandwidth"] = bandwidth_json(*r.bandwidth);
  }
  j["decode_bytes_per_token"] = r.decode_bytes;
  if (r.roofline) {
    j["roofline"] = {{"decode_bytes_per_token", r.roofline->decode_bytes},
                     {"bandwidth_gbs", r.roofline->bandwidth_gbs},
                     {"max_tg_ts", r.roofline->max_tps}};
  }
  j["peak_rss_bytes"] = r.peak_rss;
  return j;
}

}  // namespace tessera::bench
