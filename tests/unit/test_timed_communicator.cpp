// TimedCommunicator: forwards every collective unchanged and counts calls and payload bytes
// per collective; snapshots subtract into an interval's share.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "dist/timed_communicator.h"
#include "thread_communicator.h"

namespace tessera {
namespace {

using dist::Collective;

// A pipeline's groups and messages: the groups split off count into the parent's counters.
TEST(TimedCommunicator, CountsSplitGroupsAndMessages) {
  testing::run_ranks(4, [](dist::Communicator& inner) {
    dist::TimedCommunicator c(inner);
    const std::unique_ptr<dist::Communicator> tp = c.split(c.rank() / 2, c.rank() % 2);
    const std::unique_ptr<dist::Communicator> pipe = c.split(c.rank() % 2, c.rank() / 2);
    float x = 1.0f;
    tp->all_reduce_sum(&x, 1);
    EXPECT_EQ(x, 2.0f);
    int v = c.rank();
    if (pipe->rank() == 0)
      pipe->send(&v, sizeof v, 1, 3);
    else
      pipe->recv(&v, sizeof v, 0, 3);
    EXPECT_EQ(v, c.rank() % 2);  // stage 1 holds what the same TP rank of stage 0 sent
    const dist::CommStats s = c.snapshot();
    EXPECT_EQ(s[Collective::kAllReduceSum].calls, 1);
    EXPECT_EQ(s[Collective::kAllReduceSum].bytes, 4);
    EXPECT_EQ(s[Collective::kSend].calls, pipe->rank() == 0 ? 1 : 0);
    EXPECT_EQ(s[Collective::kRecv].bytes, pipe->rank() == 0 ? 0 : 4);
    EXPECT_STREQ(dist::collective_name(Collective::kRecv), "recv");
  });
}

TEST(TimedCommunicator, ForwardsAndCountsEachCollective) {
  testing::run_ranks(2, [](dist::Communicator& inner) {
    dist::TimedCommunicator c(inner);
    EXPECT_EQ(c.rank(), inner.rank());
    EXPECT_EQ(c.size(), 2);
    std::vector<float> x = {1.0f + c.rank(), 10.0f};
    c.all_reduce_sum(x.data(), 2);
    EXPECT_EQ(x, (std::vector<float>{3.0f, 20.0f}));  // the inner sum, unchanged
    std::vector<float> all(6);
    const std::vector<float> mine(3, static_cast<float>(c.rank()));
    c.all_gather(mine.data(), 3, all.data());
    EXPECT_EQ(all, (std::vector<float>{0, 0, 0, 1, 1, 1}));
    int v = c.rank() == 1 ? 42 : 0;
    c.broadcast(&v, sizeof v, 1);
    EXPECT_EQ(v, 42);
    c.barrier();
    c.all_reduce_sum(x.data(), 2);

    const dist::CommStats s = c.snapshot();
    EXPECT_EQ(s[Collective::kAllReduceSum].calls, 2);
    EXPECT_EQ(s[Collective::kAllReduceSum].bytes, 16);
    EXPECT_EQ(s[Collective::kAllGather].calls, 1);
    EXPECT_EQ(s[Collective::kAllGather].bytes, 12);  // this rank's contribution
    EXPECT_EQ(s[Collective::kBroadcast].bytes, 4);
    EXPECT_EQ(s[Collective::kBarrier].calls, 1);
    EXPECT_EQ(s[Collective::kGather].calls, 0);
    EXPECT_EQ(s.total().calls, 5);
    EXPECT_EQ(s.total().bytes, 32);
    EXPECT_GE(s.total().seconds, 0.0);

    c.broadcast(&v, sizeof v, 0);
    const dist::CommStats d = c.snapshot().since(s);
    EXPECT_EQ(d.total().calls, 1);
    EXPECT_EQ(d[Collective::kBroadcast].calls, 1);
    EXPECT_EQ(d[Collective::kAllReduceSum].calls, 0);

    c.reset();
    EXPECT_EQ(c.snapshot().total().calls, 0);
    EXPECT_EQ(c.snapshot().total().bytes, 0);
  });
}

TEST(TimedCommunicator, NamesEveryCollective) {
  EXPECT_STREQ(dist::collective_name(Collective::kAllReduceSum), "all_reduce_sum");
  EXPECT_STREQ(dist::collective_name(Collective::kBarrier), "barrier");
}

}  // namespace
}  // namespace tessera
