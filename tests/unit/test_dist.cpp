// The communicators and the start-up agreement check: the single-process communicator, and
// the collective contract (rank-order sums, broadcast, gather, groups split off, messages)
// on ranks that are threads.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/agreement.h"
#include "dist/runtime.h"
#include "thread_communicator.h"

namespace tessera {
namespace {

using testing::run_ranks;

TEST(LocalCommunicator, IsOneRankAndLeavesDataAlone) {
  dist::LocalCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  std::vector<float> x = {1.5f, -2.0f, 3.25f};
  c.all_reduce_sum(x.data(), 3);
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  int v = 7;
  c.broadcast(&v, sizeof v, 0);
  EXPECT_EQ(v, 7);
  int out = 0;
  c.gather(&v, sizeof v, &out, 0);
  EXPECT_EQ(out, 7);
  std::vector<float> all(3);
  c.all_gather(x.data(), 3, all.data());
  EXPECT_EQ(all, x);
  c.barrier();
  EXPECT_EQ(dist::broadcast_string(c, "model.gguf", 0), "model.gguf");
  EXPECT_NO_THROW(dist::check_same_on_all_ranks(c, "model", "a"));
}

TEST(LocalCommunicator, SplitsIntoOneRankAndHasNoPeers) {
  dist::LocalCommunicator c;
  const std::unique_ptr<dist::Communicator> sub = c.split(3, 0);
  EXPECT_EQ(sub->rank(), 0);
  EXPECT_EQ(sub->size(), 1);
  int v = 1;
  EXPECT_THROW(c.send(&v, sizeof v, 0, 1), Error);
  EXPECT_THROW(c.recv(&v, sizeof v, 0, 1), Error);
}

// Six ranks as 2 pipeline stages x 3 TP ranks: split by stage and by TP rank, ranked by
// key; messages between the groups' ranks arrive in order.
TEST(ThreadCommunicator, SplitsIntoGroupsAndPassesMessages) {
  std::vector<std::vector<int>> got(6);
  run_ranks(6, [&](dist::Communicator& c) {
    const int stage = c.rank() / 3, tp = c.rank() % 3;
    const std::unique_ptr<dist::Communicator> tp_group = c.split(stage, tp);
    const std::unique_ptr<dist::Communicator> pipe = c.split(tp, stage);
    EXPECT_EQ(tp_group->size(), 3);
    EXPECT_EQ(tp_group->rank(), tp);
    EXPECT_EQ(pipe->size(), 2);
    EXPECT_EQ(pipe->rank(), stage);
    // The TP group sums over its own 3 ranks only.
    float x = static_cast<float>(c.rank());
    tp_group->all_reduce_sum(&x, 1);
    EXPECT_EQ(x, stage == 0 ? 0.0f + 1.0f + 2.0f : 3.0f + 4.0f + 5.0f);
    if (stage == 0) {
      for (int m = 0; m < 3; ++m) {
        const int msg[2] = {tp, m};
        pipe->send(msg, sizeof msg, 1, 7);
      }
    } else {
      for (int m = 0; m < 3; ++m) {
        int msg[2] = {-1, -1};
        pipe->recv(msg, sizeof msg, 0, 7);
        got[c.rank()].insert(got[c.rank()].end(), {msg[0], msg[1]});
      }
    }
  });
  for (int tp = 0; tp < 3; ++tp) EXPECT_EQ(got[3 + tp], (std::vector<int>{tp, 0, tp, 1, tp, 2}));
}

TEST(Runtime, OneProcessOutsideMpirun) {
  if (dist::launched_by_mpirun()) GTEST_SKIP() << "running under mpirun";
  dist::Communicator& w = dist::world(false);
  EXPECT_EQ(w.size(), 1);
  EXPECT_FALSE(dist::started());
  EXPECT_EQ(dist::world_rank(), 0);
  // More than one rank needs mpirun (or MPI at all).
  EXPECT_THROW(dist::world(true), Error);
  dist::finalize();  // harmless without MPI
}

TEST(ThreadCommunicator, AllReduceSumsInRankOrderOnEveryRank) {
  constexpr int kRanks = 3;
  std::vector<std::vector<float>> result(kRanks);
  run_ranks(kRanks, [&](dist::Communicator& c) {
    // Values whose float sum depends on the order: (1e8 + 1) - 1e8 = 0, not 1.
    const float mine[3] = {1e8f, 1.0f, -1e8f};
    std::vector<float> x = {mine[c.rank()], float(c.rank()), 0.5f};
    c.all_reduce_sum(x.data(), 3);
    result[c.rank()] = x;
  });
  const float rank_order = (1e8f + 1.0f) + -1e8f;
  for (const auto& x : result) EXPECT_EQ(x, (std::vector<float>{rank_order, 3.0f, 1.5f}));
}

TEST(ThreadCommunicator, BroadcastAndGather) {
  run_ranks(4, [](dist::Communicator& c) {
    const float pair[2] = {float(c.rank()), -float(c.rank())};
    std::vector<float> pairs(8);
    c.all_gather(pair, 2, pairs.data());
    EXPECT_EQ(pairs, (std::vector<float>{0, 0, 1, -1, 2, -2, 3, -3}));
    EXPECT_EQ(dist::broadcast_string(c, c.rank() == 2 ? "from two" : "x", 2), "from two");
    const int mine = 10 * c.rank();
    std::vector<int> all(c.rank() == 1 ? 4 : 0);
    c.gather(&mine, sizeof mine, all.data(), 1);
    if (c.rank() == 1) {
      EXPECT_EQ(all, (std::vector<int>{0, 10, 20, 30}));
    }
    c.barrier();
  });
}

TEST(Agreement, SameEverywherePasses) {
  run_ranks(3, [](dist::Communicator& c) {
    dist::check_same_on_all_ranks(c, "model", "m.gguf (100 bytes)");
  });
}

TEST(Agreement, ADifferentRankFailsEveryRankAndIsNamed) {
  std::vector<std::string> messages(3);
  run_ranks(3, [&](dist::Communicator& c) {
    const std::string mine = c.rank() == 2 ? "run -m <model> --temp 1" : "run -m <model>";
    try {
      dist::check_same_on_all_ranks(c, "command line", mine);
    } catch (const dist::CollectiveError& e) {
      messages[c.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("rank 2's command line differs from rank 0's"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 2: run -m <model> --temp 1"), std::string::npos) << m;
  }
}

TEST(OnAllRanks, AnErrorOnOneRankEndsEveryRankWithIt) {
  std::vector<std::string> messages(3);
  run_ranks(3, [&](dist::Communicator& c) {
    try {
      dist::on_all_ranks(c, [&] {
        if (c.rank() >= 1)
          throw Error("cannot open model.gguf on rank " + std::to_string(c.rank()));
      });
    } catch (const dist::CollectiveError& e) {
      messages[c.rank()] = e.what();
    }
  });
  for (const std::string& m : messages) EXPECT_EQ(m, "rank 1: cannot open model.gguf on rank 1");
}

TEST(OnAllRanks, PassesWhenEveryRankSucceeds) {
  std::vector<int> ran(2);
  run_ranks(2, [&](dist::Communicator& c) { dist::on_all_ranks(c, [&] { ran[c.rank()] = 1; }); });
  EXPECT_EQ(ran, (std::vector<int>{1, 1}));
  dist::LocalCommunicator one;
  EXPECT_THROW(dist::on_all_ranks(one, [] { throw Error("x"); }), Error);
}

}  // namespace
}  // namespace tessera
