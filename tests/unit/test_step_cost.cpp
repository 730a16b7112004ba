// Adaptive proposal length: the step-cost model picks k by measured costs and acceptance.
#include <gtest/gtest.h>

#include <functional>

#include "spec/step_cost.h"

using tessera::StepCostModel;

namespace {

StepCostModel measured(const std::function<double(int)>& seconds, int up_to) {
  StepCostModel m;
  for (int n = 1; n <= up_to; ++n) m.observe(n, seconds(n));
  return m;
}

}  // namespace

TEST(StepCost, NothingMeasuredIsUnknown) {
  StepCostModel m;
  EXPECT_LT(m.cost(1), 0.0);
  EXPECT_EQ(m.best_k(0.9, 5, 1), -1);
  m.observe(0, 1.0);     // ignored
  m.observe(3, -1.0);    // ignored
  m.observe(1000, 1.0);  // beyond the table: ignored
  EXPECT_LT(m.cost(2), 0.0);
}

// Compute-bound steps (cost grows with every token, as on a 2-core CPU): speculation
// pays only at high acceptance, and then not with the longest proposals.
TEST(StepCost, ComputeBoundNeedsHighAcceptance) {
  const auto m = measured([](int n) { return 1.0 + 0.4 * (n - 1); }, 64);
  EXPECT_EQ(m.best_k(0.2, 5, 1), 0);
  EXPECT_EQ(m.best_k(0.4, 5, 1), 0);
  const int k = m.best_k(0.9, 5, 1);
  EXPECT_GE(k, 1);
  // The choice is the arg max of E(k) / cost(1 + k), checked directly.
  double best = 1.0 / m.cost(1);
  int arg = 0;
  double e = 1.0, p = 1.0;
  for (int j = 1; j <= 5; ++j) {
    p *= 0.9;
    e += p;
    if (e / m.cost(1 + j) > best * 1.02) best = e / m.cost(1 + j), arg = j;
  }
  EXPECT_EQ(k, arg);
}

// Bandwidth-bound steps (a step of a few tokens costs about one): propose the most.
TEST(StepCost, BandwidthBoundProposesTheMost) {
  const auto m = measured([](int n) { return 1.0 + 0.01 * (n - 1); }, 64);
  EXPECT_EQ(m.best_k(0.9, 5, 1), 5);
  EXPECT_EQ(m.best_k(0.9, 5, 4), 5);
  EXPECT_EQ(m.best_k(0.0, 5, 1), 0);  // nothing is ever accepted: nothing to gain
}

// Sizes never measured cost what the largest measured smaller size costs (optimistic):
// after only one-token steps the longest proposal is tried, then measured.
TEST(StepCost, UnmeasuredSizesAreTried) {
  StepCostModel m;
  m.observe(1, 1.0);
  EXPECT_DOUBLE_EQ(m.cost(6), 1.0);
  EXPECT_EQ(m.best_k(0.9, 5, 1), 5);
  m.observe(6, 3.0);  // expensive after all
  EXPECT_DOUBLE_EQ(m.cost(6), 3.0);
  EXPECT_LT(m.best_k(0.9, 5, 1), 5);
  // A batch of b sequences is costed at b * (1 + k) tokens.
  m.observe(4, 1.1);
  EXPECT_DOUBLE_EQ(m.cost(5), 1.1);
}

TEST(StepCost, RecentMeasurementsWeighMore) {
  StepCostModel m;
  m.observe(2, 1.0);
  for (int i = 0; i < 30; ++i) m.observe(2, 2.0);
  EXPECT_NEAR(m.cost(2), 2.0, 1e-2);
}
