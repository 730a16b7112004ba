#include "structured/sequence_grammar.h"

#include <chrono>

namespace tessera::structured {

MaskWorker::MaskWorker(int n_threads) {
  for (int i = 0; i < n_threads; ++i) threads_.emplace_back([this] { run(); });
}

MaskWorker::~MaskWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::future<void> MaskWorker::submit(std::function<void()> job) {
  std::packaged_task<void()> task(std::move(job));
  std::future<void> f = task.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(task));
  }
  cv_.notify_one();
  return f;
}

void MaskWorker::run() {
  for (;;) {
    std::packaged_task<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop_ with nothing left
      task = std::move(jobs_.front());
      jobs_.pop_front();
    }
    task();
  }
}

SequenceGrammar::SequenceGrammar(std::shared_ptr<const CompiledGrammar> g, MaskWorker* worker)
    : matcher_(std::move(g)), worker_(worker) {}

SequenceGrammar::~SequenceGrammar() {
  if (pending_.valid()) pending_.wait();
}

void SequenceGrammar::prefetch() {
  if (ready_ || pending_.valid()) return;
  auto job = [this] {
    const auto t0 = std::chrono::steady_clock::now();
    matcher_.fill_mask(mask_);
    mask_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++n_masks_;
  };
  if (worker_) {
    pending_ = worker_->submit(job);
  } else {
    job();
    ready_ = true;
  }
}

void SequenceGrammar::wait() {
  if (!ready_ && !pending_.valid()) prefetch();
  if (pending_.valid()) {
    pending_.get();  // rethrows what the job threw
    ready_ = true;
  }
}

int SequenceGrammar::apply(float* logits, int n_vocab) {
  wait();
  return apply_token_mask(mask_, logits, n_vocab);
}

bool SequenceGrammar::accept(int32_t token) {
  wait();  // the matcher must not change under a running mask job
  if (!matcher_.accept_token(token)) return false;
  ready_ = false;
  return true;
}

}  // namespace tessera::structured
