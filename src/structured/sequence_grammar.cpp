#include "structured/sequence_grammar.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>

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

namespace {
constexpr uint32_t kHorizon = 64;  // bytes to spare below which draws are checked
constexpr size_t kTail = 32;       // tokens fit_budget checks
}  // namespace

int SequenceGrammar::apply(float* logits, int n_vocab) {
  wait();
  return apply_token_mask(mask_, logits, n_vocab);
}

bool SequenceGrammar::near_budget_end(int budget) {
  if (budget <= 0) return false;
  const uint32_t need = matcher_.min_bytes_to_accept();
  return need != kNoCompletion && static_cast<uint64_t>(need) + kHorizon >= uint64_t(budget);
}

bool SequenceGrammar::fits(int32_t token, int budget) {
  return matcher_.min_bytes_after(token) <= static_cast<uint32_t>(budget - 1);
}

int32_t SequenceGrammar::sample(float* logits, int n_vocab, int budget,
                                const std::function<int32_t(float*)>& draw) {
  if (apply(logits, n_vocab) == 0) return -1;
  if (!near_budget_end(budget)) return draw(logits);
  // Most draws fit (the budget bites only in its last tokens): one check each.
  constexpr int kDraws = 3;
  masked_.assign(logits, logits + n_vocab);
  // Misses leave the masked row for the next draw, and come back for fit_budget (which
  // may still need one: the token that closes fastest).
  std::array<int32_t, kDraws> misses;
  int n_misses = 0;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t t = draw(logits);
    if (t < 0 || t >= n_vocab) break;
    if (fits(t, budget)) return t;
    misses[n_misses++] = t;
    std::copy(masked_.begin(), masked_.end(), logits);
    for (int m = 0; m < n_misses; ++m) logits[misses[m]] = -std::numeric_limits<float>::infinity();
    if (std::all_of(logits, logits + n_vocab, [](float x) { return std::isinf(x); })) break;
  }
  std::copy(masked_.begin(), masked_.end(), logits);
  if (fit_budget(logits, n_vocab, budget) == 0) return -1;
  return draw(logits);
}

// The budget in tokens is checked against the fewest *bytes* that complete the grammar: a
// byte-level vocabulary (byte-level BPE, SentencePiece byte fallback) spells every byte as
// one token, so k bytes can always be written in k tokens, and a token after which the
// grammar needs at most budget - 1 bytes can always be finished in time. The check is
// sound, never optimistic; it bites only when the tokens left are about as few as the
// bytes still needed (a string is closed, then its brackets, at the last moment).
//
// Checking every allowed token costs a walk each, so after the draws that missed, the
// kTail most likely allowed tokens are checked: that draw is from at most kTail tokens. When none
// of them fits (the budget was already short: a token opened a long structure just before the
// tail), the tokens among them and the single-byte tokens that leave the fewest bytes to write are
// kept; the first byte of a shortest completion is always among those, so the sequence then closes
// as fast as the grammar allows. Either way at most kTail + 256 tokens are walked per step.
int SequenceGrammar::fit_budget(float* logits, int n_vocab, int budget) {
  const TokenVocab& vocab = matcher_.compiled().vocab();
  cand_.clear();
  singles_.clear();
  for (int32_t t = 0; t < n_vocab; ++t) {
    if (std::isinf(logits[t])) continue;
    cand_.push_back(t);
    if (t < vocab.n_vocab() && vocab.bytes(t).size() == 1) singles_.push_back(t);
  }
  if (cand_.size() > kTail) {
    std::partial_sort(cand_.begin(), cand_.begin() + kTail, cand_.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    cand_.resize(kTail);
  }
  std::vector<int32_t> keep;
  for (int32_t t : cand_)
    if (matcher_.min_bytes_after(t) <= static_cast<uint32_t>(budget - 1)) keep.push_back(t);
  if (keep.empty()) {
    uint32_t best = kNoCompletion;
    for (const auto* pool : {&cand_, &singles_})
      for (int32_t t : *pool) {
        const uint32_t after = matcher_.min_bytes_after(t);
        if (after < best) keep.clear(), best = after;
        if (after == best && std::find(keep.begin(), keep.end(), t) == keep.end())
          keep.push_back(t);
      }
  }
  std::vector<float> kept(keep.size());
  for (size_t i = 0; i < keep.size(); ++i) kept[i] = logits[keep[i]];
  std::fill(logits, logits + n_vocab, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < keep.size(); ++i) logits[keep[i]] = kept[i];
  return static_cast<int>(keep.size());
}

bool SequenceGrammar::accept(int32_t token) {
  wait();  // the matcher must not change under a running mask job
  if (!matcher_.accept_token(token)) return false;
  ready_ = false;
  return true;
}

}  // namespace tessera::structured
