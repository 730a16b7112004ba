// The scheduler driven by a fake engine step (no model): chunked prefill, mixing
// decodes with prefill chunks, sequence caps, preemption under memory pressure.
#include <gtest/gtest.h>

#include <memory>

#include "engine/scheduler.h"

namespace tessera {
namespace {

struct Harness {
  KVCacheManager kv;
  Scheduler sched;
  std::vector<std::unique_ptr<Request>> reqs;
  std::vector<Request*> finished;
  Harness(int n_blocks, int block_size, SchedulerConfig cfg, bool prefix = true)
      : kv(n_blocks, block_size, prefix), sched(cfg, kv) {}

  Request* add(int n_prompt, int max_tokens, int32_t first_token = 1000) {
    auto r = std::make_unique<Request>();
    r->id = reqs.size() + 1;
    for (int i = 0; i < n_prompt; ++i) r->tokens.push_back(first_token + i);
    r->n_prompt = n_prompt;
    r->max_tokens = max_tokens;
    sched.add(r.get());
    reqs.push_back(std::move(r));
    return reqs.back().get();
  }

  // One engine step: every sampling item gets token 7; finished requests leave.
  SchedulerOutput step() {
    SchedulerOutput out = sched.schedule();
    // Invariants of a step's batch.
    int n = 0;
    for (const ScheduledItem& it : out.items) {
      EXPECT_EQ(it.start, it.req->n_computed);
      EXPECT_GT(it.n_new, 0);
      const int blocks_needed = (it.start + it.n_new + kv.block_size() - 1) / kv.block_size();
      EXPECT_GE(static_cast<int>(it.req->blocks.size()), blocks_needed);
      n += it.n_new;
    }
    EXPECT_EQ(n, out.n_tokens);
    sched.step_done(out);
    for (const ScheduledItem& it : out.items) {
      if (!it.sample) continue;
      it.req->tokens.push_back(7);
      if (it.req->n_output() >= it.req->max_tokens) {
        sched.finish(it.req, RequestStatus::FINISHED_LENGTH);
        finished.push_back(it.req);
      }
    }
    return out;
  }
};

TEST(Scheduler, LongPromptIsPrefilledInChunks) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 8;
  Harness h(64, 4, cfg);
  Request* r = h.add(20, 2);
  SchedulerOutput o1 = h.step();
  ASSERT_EQ(o1.items.size(), 1u);
  EXPECT_EQ(o1.items[0].n_new, 8);
  EXPECT_FALSE(o1.items[0].sample);
  EXPECT_EQ(h.step().items[0].n_new, 8);
  SchedulerOutput o3 = h.step();
  EXPECT_EQ(o3.items[0].n_new, 4);
  EXPECT_TRUE(o3.items[0].sample);
  EXPECT_EQ(r->n_output(), 1);
  SchedulerOutput o4 = h.step();  // decode
  EXPECT_EQ(o4.items[0].n_new, 1);
  EXPECT_EQ(r->status, RequestStatus::FINISHED_LENGTH);
  EXPECT_EQ(h.kv.pool().n_used(), 0);
}

TEST(Scheduler, DecodesKeepFlowingDuringALongPrefill) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 6;
  Harness h(64, 4, cfg);
  Request* a = h.add(3, 10);
  h.step();  // a prefilled, first token sampled
  Request* b = h.add(40, 1, 5000);
  for (int s = 0; s < 5; ++s) {
    SchedulerOutput o = h.step();
    ASSERT_EQ(o.items.size(), 2u);
    EXPECT_EQ(o.items[0].req, a);
    EXPECT_EQ(o.items[0].n_new, 1);  // a decodes every step
    EXPECT_EQ(o.items[1].req, b);
    EXPECT_EQ(o.items[1].n_new, 5);  // b takes the rest of the budget
  }
}

TEST(Scheduler, SequenceCapIsRespected) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 2;
  Harness h(64, 4, cfg);
  for (int i = 0; i < 5; ++i) h.add(3, 3, 100 * i);
  SchedulerOutput o = h.step();
  EXPECT_EQ(o.items.size(), 2u);
  EXPECT_EQ(h.sched.n_waiting(), 3);
  int steps = 0;
  while (h.sched.has_work() && steps++ < 100) {
    EXPECT_LE(h.step().items.size(), 2u);
  }
  EXPECT_EQ(h.finished.size(), 5u);
}

TEST(Scheduler, PreemptsUnderMemoryPressureAndCompletesEverything) {
  SchedulerConfig cfg;
  cfg.max_num_batched_tokens = 64;
  // 12 blocks of 4 tokens = 48 tokens; 6 requests that each grow to 4 + 12 = 16 tokens
  // need 96 tokens together, so some must be preempted and recomputed.
  Harness h(12, 4, cfg, /*prefix=*/false);
  for (int i = 0; i < 6; ++i) h.add(4, 12, 100 * i);
  int steps = 0, preemptions = 0;
  while (h.sched.has_work() && steps++ < 1000) {
    SchedulerOutput o = h.step();
    preemptions += static_cast<int>(o.preempted.size());
    EXPECT_LE(h.kv.pool().n_used(), 12);
  }
  EXPECT_EQ(h.finished.size(), 6u);
  EXPECT_GT(preemptions, 0);
  for (auto& r : h.reqs) {
    EXPECT_EQ(r->n_output(), 12);
    EXPECT_TRUE(r->blocks.empty());
  }
  EXPECT_EQ(h.kv.pool().n_used(), 0);
}

TEST(Scheduler, PrefixCacheHitIsRecorded) {
  SchedulerConfig cfg;
  Harness h(64, 4, cfg);
  Request* a = h.add(17, 1);
  h.step();
  EXPECT_EQ(a->n_cached_prompt, 0);
  Request* b = h.add(17, 1);  // same prompt
  SchedulerOutput o = h.step();
  EXPECT_EQ(b->n_cached_prompt, 16);
  ASSERT_EQ(o.items.size(), 1u);
  EXPECT_EQ(o.items[0].start, 16);
  EXPECT_EQ(o.items[0].n_new, 1);
}

TEST(Scheduler, FinishingAWaitingRequestRemovesIt) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 1;
  Harness h(64, 4, cfg);
  h.add(3, 5);
  Request* b = h.add(3, 5);
  h.step();
  h.sched.finish(b, RequestStatus::FINISHED_ABORTED);
  EXPECT_EQ(h.sched.n_waiting(), 0);
  EXPECT_EQ(b->status, RequestStatus::FINISHED_ABORTED);
}

}  // namespace
}  // namespace tessera
