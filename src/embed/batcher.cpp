// The embedding batcher thread. See batcher.h.
#include "embed/batcher.h"

#include "engine/engine.h"  // EngineBusy

namespace tessera {

EmbedJob::EmbedJob(std::vector<EmbedInput> inputs) : inputs_(std::move(inputs)) {
  outputs_.resize(inputs_.size());
  for (const EmbedInput& in : inputs_) n_tokens_ += static_cast<int>(in.tokens.size());
  done_ = inputs_.empty();
}

bool EmbedJob::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

void EmbedJob::set_output(size_t i, std::vector<float> v) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    outputs_[i] = std::move(v);
    count_done();
  }
  cv_.notify_all();
}

void EmbedJob::fail(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) error_ = message;
    count_done();
  }
  cv_.notify_all();
}

// Under mu_: one more input done; the last one leaves the in-flight count before any
// waiter can see the job done.
void EmbedJob::count_done() {
  if (++n_done_ < inputs_.size()) return;
  if (inflight_) --*inflight_;
  done_ = true;
}

EmbedBatcher::EmbedBatcher(EmbeddingRunner& runner, int max_waiting_inputs)
    : runner_(runner), max_waiting_(max_waiting_inputs) {
  thread_ = std::thread([this] { loop(); });
}

EmbedBatcher::~EmbedBatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Item& it : waiting_) it.job->fail("the server is shutting down");
}

std::shared_ptr<EmbedJob> EmbedBatcher::submit(std::vector<EmbedInput> inputs) {
  auto job = std::make_shared<EmbedJob>(std::move(inputs));
  const size_t n = job->inputs().size();
  if (n == 0) return job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_ || stop_) throw EngineBusy("the server is shutting down", true);
    if (waiting_.size() + n > static_cast<size_t>(max_waiting_))
      throw EngineBusy("too many inputs are waiting (" + std::to_string(waiting_.size()) +
                           " of at most " + std::to_string(max_waiting_) + "); retry later",
                       false);
    for (size_t i = 0; i < n; ++i) waiting_.push_back({job, i});
    ++n_inflight_;
    job->inflight_ = &n_inflight_;
    ++stats_.requests;
    stats_.inputs += static_cast<int64_t>(n);
    stats_.tokens += job->n_tokens();
  }
  cv_.notify_all();
  return job;
}

EmbedBatcherStats EmbedBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EmbedBatcherStats s = stats_;
  s.waiting_inputs = static_cast<int>(waiting_.size());
  return s;
}

void EmbedBatcher::loop() {
  const EmbedSettings& s = runner_.settings();
  std::vector<Item> batch;
  std::vector<const EmbedInput*> inputs;
  std::vector<std::vector<float>> out;
  for (;;) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !waiting_.empty(); });
      if (stop_) return;
      // FIFO: inputs join the pass while it stays within the token and input budgets; each
      // input alone fits (runner.check: at most max_len <= max_batch_tokens tokens).
      int tokens = 0;
      while (!waiting_.empty() && static_cast<int>(batch.size()) < s.max_batch_seqs) {
        const Item& it = waiting_.front();
        const int len = static_cast<int>(it.job->inputs()[it.index].tokens.size());
        if (!batch.empty() && tokens + len > s.max_batch_tokens) break;
        tokens += len;
        batch.push_back(it);
        waiting_.pop_front();
      }
    }
    inputs.clear();
    for (const Item& it : batch) inputs.push_back(&it.job->inputs()[it.index]);
    try {
      runner_.run(inputs, out);
      for (size_t i = 0; i < batch.size(); ++i)
        batch[i].job->set_output(batch[i].index, std::move(out[i]));
    } catch (const std::exception& e) {
      // Inputs are checked before they are queued, so this is an internal failure (memory).
      for (const Item& it : batch) it.job->fail(std::string("embedding failed: ") + e.what());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.batches;
    }
  }
}

}  // namespace tessera
