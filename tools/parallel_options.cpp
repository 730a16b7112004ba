// --tensor-parallel-size, --pipeline-parallel-size and the start of a multi-process run,
// shared by the subcommands that run a model across processes (run, logits, perplexity,
// bench, serve).
//
// run, logits, perplexity and bench: every rank runs the same command: it loads its shard,
// tokenizes the same prompt and runs the same driver loop (the engine, the sampler) on logits
// that are bit-identical on every rank (the all-reduce sums in rank order, the head's rows
// are gathered whole on every rank, the last pipeline stage broadcasts the logits), so the
// ranks choose the same tokens and call the same collectives in the same order with no token
// traffic. serve: rank 0 alone runs the engine and broadcasts each step to the other ranks
// (engine/distributed_step.h). What keeps them in step is checked here at the start: the same world
// size as
// --tensor-parallel-size, the same model file and the same command line; a random seed is
// drawn on rank 0 and shared (ParallelRun::shared_seed). Only rank 0 writes to stdout.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "cli_common.h"
#include "dist/agreement.h"
#include "dist/runtime.h"
#include "models/model.h"

namespace tessera::cli {

namespace {

std::vector<std::string>& command_line_store() {
  static std::vector<std::string> args;
  return args;
}

// FNV-1a of the first MiB of a file: its GGUF header, metadata and tensor table for the
// models that matter, enough to tell two different files of the same name and size apart.
uint64_t head_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(size_t{1} << 20);
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  uint64_t h = 1469598103934665603ull;
  for (std::streamsize i = 0; i < in.gcount(); ++i) {
    h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
    h *= 1099511628211ull;
  }
  return h;
}

// The model as the ranks compare it: its name (paths may differ between hosts), size and,
// for a file, the hash of its head.
std::string model_fingerprint(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  const std::string name = p.filename().empty() ? p.parent_path().filename() : p.filename();
  if (fs::is_regular_file(p, ec)) {
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(head_hash(path)));
    return name + " (" + std::to_string(fs::file_size(p, ec)) + " bytes, head " + hash + ")";
  }
  if (fs::is_directory(p, ec)) {
    uintmax_t n = 0, bytes = 0;
    for (const fs::directory_entry& e : fs::directory_iterator(p, ec))
      if (e.is_regular_file(ec)) ++n, bytes += e.file_size(ec);
    return name + "/ (" + std::to_string(n) + " files, " + std::to_string(bytes) + " bytes)";
  }
  return name + " (missing)";
}

// The command line with the model's path left out (compared as model_fingerprint).
std::string flags_fingerprint(const std::string& model_path) {
  std::string s;
  for (const std::string& a : command_line_store()) {
    std::string arg = a;
    if (a == model_path || a == "--model=" + model_path || a == "-m" + model_path) arg = "<model>";
    s += (s.empty() ? "" : " ") + arg;
  }
  return s;
}

}  // namespace

void set_command_line(int argc, char** argv) {
  command_line_store().assign(argv + std::min(argc, 1), argv + argc);
}

void add_parallel_options(CLI::App& app, ParallelOptions& po) {
  app.add_option("--tensor-parallel-size,--tp", po.tensor_parallel_size,
                 "split the model's heads and feed-forward rows across this many processes, "
                 "started by mpirun -np N (default 1)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--pipeline-parallel-size,--pp", po.pipeline_parallel_size,
                 "split the model's layers into this many stages, each on its own processes "
                 "(mpirun -np TP*PP; default 1)")
      ->check(CLI::Range(1, 1024));
  app.add_flag("--tp-exact", po.exact,
               "split the output projections by rows and gather their inputs and outputs (4 "
               "all-gathers per layer instead of 2 all-reduces): logits bit-identical to one "
               "process");
}

ParallelRun start_parallel(const ParallelOptions& po, const std::string& model_path) {
  const int tp = po.tensor_parallel_size, pp = po.pipeline_parallel_size, n = tp * pp;
  ParallelRun run;
  if (n == 1 && !dist::launched_by_mpirun()) return run;
  dist::Communicator& comm = dist::world(n > 1);
  if (comm.size() != n)
    throw dist::CollectiveError(
        "mpirun started " + std::to_string(comm.size()) + " processes but " +
        (pp == 1 ? "--tensor-parallel-size is " + std::to_string(tp) + ": they must be equal"
                 : "--tensor-parallel-size " + std::to_string(tp) + " x --pipeline-parallel-size " +
                       std::to_string(pp) + " is " + std::to_string(n)));
  if (n == 1) return run;
  dist::check_same_on_all_ranks(comm, "model", model_fingerprint(model_path));
  dist::check_same_on_all_ranks(comm, "command line", flags_fingerprint(model_path));
  run.comm = &comm;
  run.rank = comm.rank();
  run.pipeline_parallel_size = pp;
  run.exact = po.exact;
  if (run.rank != 0) {  // only rank 0 writes results
    std::fflush(stdout);
    const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDOUT_FILENO);
      ::close(null_fd);
    }
  }
  return run;
}

void load_on_all_ranks(const ParallelRun& par, const std::function<void()>& load) {
  if (par.comm == nullptr) return load();
  dist::on_all_ranks(*par.comm, load);
}

void ParallelRun::configure(ModelOptions& mo) const {
  mo.comm = comm;
  mo.pipeline_parallel_size = pipeline_parallel_size;
  mo.tp_exact = exact;
}

uint64_t ParallelRun::shared_seed() const {
  uint64_t seed = std::random_device{}();
  seed = seed << 32 | std::random_device{}();
  if (comm != nullptr) comm->broadcast(&seed, sizeof seed, 0);
  return seed;
}

}  // namespace tessera::cli
