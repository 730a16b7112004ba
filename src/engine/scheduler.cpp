#include "engine/scheduler.h"

#include <algorithm>
#include <cassert>

namespace tessera {

Scheduler::Scheduler(const SchedulerConfig& cfg, KVCacheManager& kv) : cfg_(cfg), kv_(kv) {}

void Scheduler::add(Request* r) {
  r->status = RequestStatus::WAITING;
  waiting_.push_back(r);
}

void Scheduler::preempt(Request* r) {
  kv_.free(*r);
  r->spec_tokens.clear();
  r->n_computed = 0;
  r->n_cached_prompt = -1;
  r->status = RequestStatus::PREEMPTED;
  ++r->n_preemptions;
  running_.erase(std::find(running_.begin(), running_.end(), r));
  waiting_.push_front(r);
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int budget = cfg_.max_num_batched_tokens;

  // 1. Running requests.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Request* r = running_[i];
    // A decode (one token left to compute) also verifies its proposed tokens, when the
    // budget and the pool allow; proposals never cause a preemption.
    const int n_need = r->n_tokens() - r->n_computed;
    const int n_spec = n_need == 1 ? static_cast<int>(r->spec_tokens.size()) : 0;
    int n_new = std::min(n_need + n_spec, budget);
    if (n_new <= 0) {
      ++i;
      continue;
    }
    bool ok = kv_.allocate(*r, n_new);
    if (!ok && n_new > n_need) {
      n_new = std::min(n_need, budget);
      ok = kv_.allocate(*r, n_new);
    }
    r->spec_tokens.resize(static_cast<size_t>(std::max(0, n_new - n_need)));
    while (!ok) {
      // Free memory by preempting the latest arrival; it may be r itself.
      Request* victim = running_.back();
      out.preempted.push_back(victim);
      // A victim scheduled earlier in this step gives its tokens back.
      for (auto it = out.items.begin(); it != out.items.end(); ++it)
        if (it->req == victim) {
          budget += it->n_new;
          out.n_tokens -= it->n_new;
          out.items.erase(it);
          break;
        }
      preempt(victim);
      if (victim == r) break;
      ok = kv_.allocate(*r, n_new);
    }
    if (!ok) continue;  // r was preempted; running_[i] is now the next request
    out.items.push_back({r, r->n_computed, n_new, r->n_computed + n_new >= r->n_tokens()});
    out.n_tokens += n_new;
    budget -= n_new;
    ++i;
  }

  // 2. Waiting requests, while nothing had to be preempted this step.
  while (!waiting_.empty() && budget > 0 && out.preempted.empty() &&
         static_cast<int>(running_.size()) < cfg_.max_num_seqs) {
    Request* r = waiting_.front();
    r->spec_tokens.clear();  // a prefill verifies nothing
    std::vector<int> cached = kv_.find_cached_prefix(*r);
    const int n_cached = static_cast<int>(cached.size()) * kv_.block_size();
    const int n_new = std::min(r->n_tokens() - n_cached, budget);
    if (!kv_.allocate(*r, n_new, cached)) break;  // wait for memory
    if (r->n_cached_prompt < 0) r->n_cached_prompt = std::min(n_cached, r->n_prompt);
    waiting_.pop_front();
    r->status = RequestStatus::RUNNING;
    running_.push_back(r);
    out.items.push_back({r, r->n_computed, n_new, r->n_computed + n_new == r->n_tokens()});
    out.n_tokens += n_new;
    budget -= n_new;
  }
  return out;
}

void Scheduler::step_done(const SchedulerOutput& out) {
  for (const ScheduledItem& it : out.items) {
    // Proposed tokens are not counted: they become computed when accepted (rollback()).
    it.req->n_computed = std::min(it.req->n_computed + it.n_new, it.req->n_tokens());
    kv_.cache_full_blocks(*it.req);
  }
}

void Scheduler::finish(Request* r, RequestStatus status) {
  assert(is_finished(status));
  if (auto it = std::find(running_.begin(), running_.end(), r); it != running_.end())
    running_.erase(it);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), r); it != waiting_.end())
    waiting_.erase(it);
  kv_.free(*r);
  r->status = status;
}

}  // namespace tessera
