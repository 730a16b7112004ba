// tessera bench-comm: latency and bandwidth of the collectives tensor parallelism uses, over
// message sizes, between the processes mpirun started (run it as mpirun -np N tessera
// bench-comm). Rank 0 prints one JSON object on stdout and a table on stderr.
//
// After one barrier per size, the ranks run the collective back to back, each timing every
// call: a repetition's time is the slowest rank's (a collective is over when the last rank
// has its result), and a size's figure is the median of its repetitions (min alongside).
// Back to back, the ranks enter each call together, as they do in a model whose ranks
// compute equal shares between collectives; a barrier before each call would instead add
// the barrier's own skew (one link latency) to every figure. Sizes are per-rank buffers:
// all_reduce_sum and broadcast of S bytes, all_gather of S bytes from each rank (T·S out).
// Bus bandwidth is the bytes one rank's link must carry divided by the time, as NCCL's tests
// count it: all-reduce 2(T−1)/T·S (reduce-scatter then all-gather), all-gather (T−1)·S,
// broadcast S; it is the figure to compare with a link's speed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "cli_common.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "dist/runtime.h"

namespace tessera::cli {

namespace {

struct BenchCommOptions {
  int64_t min_bytes = 4;
  int64_t max_bytes = int64_t{64} << 20;
  int factor = 2;
  int reps = 20;
  int warmup = 3;
  std::string ops = "all_reduce_sum,all_gather,broadcast";
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Bytes a rank's link carries for one collective of `bytes` per rank among `t` ranks.
double bus_bytes(const std::string& op, double bytes, int t) {
  if (op == "all_reduce_sum") return 2.0 * (t - 1) / t * bytes;
  if (op == "all_gather") return (t - 1) * bytes;
  return t > 1 ? bytes : 0.0;  // broadcast: nothing moves in a world of one
}

int run(const BenchCommOptions& o) {
  if (o.min_bytes > o.max_bytes) throw Error("--min-bytes is larger than --max-bytes");
  std::vector<std::string> ops;
  {
    std::stringstream ss(o.ops);
    for (std::string op; std::getline(ss, op, ',');) {
      if (op != "all_reduce_sum" && op != "all_gather" && op != "broadcast")
        throw Error("unknown collective '" + op +
                    "' in --ops (all_reduce_sum, all_gather, broadcast)");
      ops.push_back(op);
    }
  }
  if (ops.empty()) throw Error("--ops names no collective");
  dist::Communicator& comm = dist::world(false);
  const int t = comm.size();
  const bool root = comm.rank() == 0;

  std::vector<float> buf, out;
  nlohmann::json results = nlohmann::json::array();
  if (root)
    std::fprintf(stderr, "%-15s %12s %12s %12s %12s\n", "collective", "bytes", "median us",
                 "min us", "bus GB/s");
  for (const std::string& op : ops) {
    for (int64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.factor) {
      const int64_t n = std::max<int64_t>(1, bytes / 4);  // floats for the float collectives
      buf.assign(static_cast<size_t>(n), 1.0f + comm.rank());
      if (op == "all_gather") out.assign(static_cast<size_t>(n) * t, 0.0f);
      std::vector<float> mine;  // this rank's seconds, per measured repetition
      comm.barrier();
      for (int rep = 0; rep < o.warmup + o.reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        if (op == "all_reduce_sum")
          comm.all_reduce_sum(buf.data(), n);
        else if (op == "all_gather")
          comm.all_gather(buf.data(), n, out.data());
        else
          comm.broadcast(buf.data(), bytes, 0);
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep >= o.warmup) mine.push_back(static_cast<float>(s));
        // Keep the all-reduce's values from growing without bound (T^reps).
        if (op == "all_reduce_sum") std::fill(buf.begin(), buf.end(), 1.0f + comm.rank());
      }
      // A repetition lasts until its slowest rank is done.
      std::vector<float> all(mine.size() * static_cast<size_t>(t));
      comm.all_gather(mine.data(), static_cast<int64_t>(mine.size()), all.data());
      std::vector<double> slowest(mine.size(), 0.0);
      for (int r = 0; r < t; ++r)
        for (size_t i = 0; i < mine.size(); ++i)
          slowest[i] = std::max(slowest[i], static_cast<double>(all[r * mine.size() + i]));
      const double med = median(slowest);
      const double mn = *std::min_element(slowest.begin(), slowest.end());
      const double bus = med > 0 ? bus_bytes(op, static_cast<double>(bytes), t) / med / 1e9 : 0;
      if (root) {
        std::fprintf(stderr, "%-15s %12lld %12.1f %12.1f %12.3f\n", op.c_str(),
                     static_cast<long long>(bytes), med * 1e6, mn * 1e6, bus);
        results.push_back({{"collective", op},
                           {"bytes", bytes},
                           {"repetitions", o.reps},
                           {"median_us", med * 1e6},
                           {"min_us", mn * 1e6},
                           {"bus_bytes", bus_bytes(op, static_cast<double>(bytes), t)},
                           {"bus_bandwidth_GBps", bus}});
      }
    }
  }
  if (root) {
    nlohmann::json j;
    j["world_size"] = t;
    j["results"] = results;
    std::puts(j.dump().c_str());
  }
  return 0;
}

}  // namespace

Runner add_bench_comm(CLI::App& app) {
  auto o = std::make_shared<BenchCommOptions>();
  app.add_option("--min-bytes", o->min_bytes, "smallest message, bytes per rank (default 4)")
      ->check(CLI::Range(int64_t{4}, int64_t{1} << 30));
  app.add_option("--max-bytes", o->max_bytes, "largest message, bytes per rank (default 64 MiB)")
      ->check(CLI::Range(int64_t{4}, int64_t{1} << 30));
  app.add_option("--factor", o->factor, "each size is the previous one times this (default 2)")
      ->check(CLI::Range(2, 1024));
  app.add_option("--reps", o->reps, "measured repetitions per size (default 20)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", o->warmup, "unmeasured repetitions first (default 3)")
      ->check(CLI::Range(0, 100000));
  app.add_option("--ops", o->ops,
                 "collectives, comma-separated (default all_reduce_sum,all_gather,broadcast)");
  return [o] { return run(*o); };
}

}  // namespace tessera::cli
