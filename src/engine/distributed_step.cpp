#include "engine/distributed_step.h"

#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "dist/runtime.h"

namespace tessera {

namespace {

std::string rank_name() {
  return "rank " + std::to_string(dist::world_rank());
}

[[noreturn]] void end_job(const std::string& what) {
  std::fprintf(stderr, "error: %s: %s; ending every rank\n", rank_name().c_str(), what.c_str());
  std::fflush(stderr);
  dist::abort(1);
}

}  // namespace

dist::StepMessage step_message(const std::vector<SeqChunk>& chunks, int block_size) {
  dist::StepMessage m;
  m.chunks.resize(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& c = chunks[i];
    dist::StepChunk& s = m.chunks[i];
    s.start = c.start;
    s.n_new = c.n_new;
    s.n_prompt = c.n_prompt;
    s.out_begin = c.out_begin;
    s.out_end = c.out_end;
    s.tokens.assign(c.tokens + c.start, c.tokens + c.start + c.n_new);
    const int n_blocks = (c.start + c.n_new + block_size - 1) / block_size;
    s.blocks.assign(c.block_table, c.block_table + n_blocks);
  }
  return m;
}

std::vector<SeqChunk> step_chunks(const dist::StepMessage& m, int block_size, int n_blocks,
                                  std::vector<std::vector<int32_t>>& tokens) {
  std::vector<SeqChunk> chunks(m.chunks.size());
  if (tokens.size() < m.chunks.size()) tokens.resize(m.chunks.size());
  for (size_t i = 0; i < m.chunks.size(); ++i) {
    const dist::StepChunk& s = m.chunks[i];
    const int64_t end = int64_t{s.start} + s.n_new;
    if (static_cast<int64_t>(s.blocks.size()) * block_size < end)
      throw Error("step chunk " + std::to_string(i) + ": its block table does not cover " +
                  "its positions");
    for (int32_t b : s.blocks)
      if (b < 0 || b >= n_blocks)
        throw Error("step chunk " + std::to_string(i) + " names block " + std::to_string(b) +
                    " of a pool of " + std::to_string(n_blocks));
    // Positions index the sequence's tokens: only [start, end) are read.
    std::vector<int32_t>& t = tokens[i];
    if (static_cast<int64_t>(t.size()) < end) t.resize(static_cast<size_t>(end));
    std::copy(s.tokens.begin(), s.tokens.end(), t.begin() + s.start);
    SeqChunk& c = chunks[i];
    c.tokens = t.data();
    c.start = s.start;
    c.n_new = s.n_new;
    c.n_prompt = s.n_prompt;
    c.block_table = s.blocks.data();
    c.out_begin = s.out_begin;
    c.out_end = s.out_end;
  }
  return chunks;
}

StepPublisher::StepPublisher(dist::StepChannel& channel, int block_size, double timeout_s)
    : channel_(channel), block_size_(block_size), watchdog_(timeout_s, rank_name()) {}

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void StepPublisher::publish(const std::vector<SeqChunk>& chunks) {
  watchdog_.arm("a forward step across the ranks");
  started_ns_ = now_ns();
  channel_.send(step_message(chunks, block_size_));
}

void StepPublisher::done() {
  watchdog_.disarm();
  const int64_t took = now_ns() - started_ns_.exchange(0);
  if (took > longest_ns_) longest_ns_ = took;
}

double StepPublisher::in_flight_s() const {
  const int64_t t0 = started_ns_;
  return t0 == 0 ? 0.0 : static_cast<double>(now_ns() - t0) * 1e-9;
}

double StepPublisher::longest_step_s() const {
  return static_cast<double>(longest_ns_) * 1e-9;
}

void StepPublisher::failed(const char* what) {
  end_job(std::string("the model failed a step: ") + what);
}

void StepPublisher::stop() {
  if (stopped_) return;
  stopped_ = true;
  dist::StepMessage m;
  m.kind = dist::StepMessage::Kind::STOP;
  watchdog_.arm("telling the other ranks to stop");
  channel_.send(m);
  watchdog_.disarm();
}

void run_step_worker(Model& model, KVCache& kv, int n_blocks, int block_size,
                     dist::StepChannel& channel, double timeout_s) {
  ModelRunner runner(model, kv, block_size);
  // Twice rank 0's bound: a rank that hangs is reported by rank 0, which waits on it
  // first; this one catches rank 0 hanging in the middle of a step.
  dist::Watchdog watchdog(2 * timeout_s, rank_name());
  std::vector<std::vector<int32_t>> tokens;
  for (;;) {
    dist::StepMessage m;
    try {
      m = channel.receive();  // waits as long as rank 0 has nothing to run
      if (m.kind == dist::StepMessage::Kind::STOP) return;
      watchdog.arm("a forward step across the ranks");
      runner.forward(step_chunks(m, block_size, n_blocks, tokens));
      watchdog.disarm();
    } catch (const std::exception& e) {
      end_job(e.what());
    }
  }
}

}  // namespace tessera
