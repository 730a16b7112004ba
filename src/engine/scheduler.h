// Continuous-batching scheduler. Each step it hands out a token budget:
//   1. running requests first, in arrival order: each gets the tokens it still needs
//      (1 for a decode, a chunk of its prompt for a long prefill);
//      when the pool cannot supply blocks, the latest-arrived running request is
//      preempted (its blocks freed; it will recompute) until the allocation fits;
//   2. then waiting requests, oldest first (preempted ones go back to the front),
//      reusing prefix-cache blocks, while the budget, the sequence cap and the pool allow.
// It owns no memory and runs no model: KVCacheManager does blocks, the engine runs steps.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "engine/kv_manager.h"
#include "engine/request.h"

namespace tessera {

struct SchedulerConfig {
  int max_num_seqs = 64;             // sequences in one step
  int max_num_batched_tokens = 512;  // tokens in one step (decodes + prefill chunks)
};

struct ScheduledItem {
  Request* req;
  int start;    // compute tokens [start, start + n_new) (start == req->n_computed when scheduled)
  int n_new;    // includes req->spec_tokens (after its n_tokens()) for a speculative decode
  bool sample;  // the chunk reaches the end of the request's tokens: sample the next one
};

struct SchedulerOutput {
  std::vector<ScheduledItem> items;
  std::vector<Request*> preempted;
  int n_tokens = 0;
  bool empty() const { return items.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, KVCacheManager& kv);

  void add(Request* r);  // joins the waiting queue
  SchedulerOutput schedule();
  // After the model ran `out`: advance n_computed and register full blocks for reuse.
  void step_done(const SchedulerOutput& out);
  // Removes r from the queues and frees its blocks; r->status becomes `status`.
  void finish(Request* r, RequestStatus status);

  int n_running() const { return static_cast<int>(running_.size()); }
  int n_waiting() const { return static_cast<int>(waiting_.size()); }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }

 private:
  void preempt(Request* r);

  SchedulerConfig cfg_;
  KVCacheManager& kv_;
  std::vector<Request*> running_;  // arrival order
  std::deque<Request*> waiting_;
};

}  // namespace tessera
