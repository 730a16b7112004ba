// Tensor parallelism of the decoder, with ranks as threads of this process: every
// architecture's tiny model at TP=2 (their single KV head held by both ranks) gives the
// logits of one process (which test_archs.cpp checks against the references) within float
// rounding, the row-parallel sums being split in two, and the same bits on both ranks;
// families and shapes that cannot be split are refused with a clear error.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arch_reference.h"
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "thread_communicator.h"

namespace tessera {
namespace {

using archref::kDir;
using archref::load_reference;
using archref::Reference;
using archref::rel_error;

ModelOptions tp_options(dist::Communicator* comm, bool exact = false) {
  // An f32 KV cache: the references are float32 implementations.
  return {.n_threads = 1, .kv_cache_type = "f32", .comm = comm, .tp_exact = exact};
}

// Logits of every position of every prompt of `ref`, prefill then one token at a time.
std::vector<float> all_logits(Model& m, const Reference& ref) {
  std::vector<float> out;
  for (const auto& prompt : ref.prompts) {
    const int n = static_cast<int>(prompt.size());
    std::vector<int32_t> want;
    for (int i = ref.last_only ? n - 1 : 0; i < n; ++i) want.push_back(i);
    for (int n_batch : {n, 1}) {
      SequenceRunner runner(m, 64);
      std::vector<float> logits(want.size() * ref.n_vocab);
      runner.eval(prompt, want, logits.data(), n_batch);
      out.insert(out.end(), logits.begin(), logits.end());
    }
  }
  return out;
}

class TensorParallelArch : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallelArch, TwoRanksGiveOneProcessLogits) {
  const std::string name = GetParam();
  const Reference ref = load_reference(name);
  auto single = load_model(kDir + name + ".gguf", tp_options(nullptr));
  const std::vector<float> want = all_logits(*single, ref);

  std::vector<std::vector<float>> got(2);
  std::vector<int> kv_dims(2);
  testing::run_ranks(2, [&](dist::Communicator& c) {
    auto m = load_model(kDir + name + ".gguf", tp_options(&c));
    kv_dims[c.rank()] = m->kv_dim_local();
    got[c.rank()] = all_logits(*m, ref);
  });
  // One KV head: each rank holds it (and its cache) whole.
  EXPECT_EQ(kv_dims[0], single->kv_dim_local());
  ASSERT_EQ(got[0].size(), want.size());
  EXPECT_EQ(got[0], got[1]) << "the ranks' logits differ";
  const int V = ref.n_vocab;
  double worst = 0.0;
  for (size_t row = 0; row < want.size() / V; ++row)
    worst = std::max(worst, rel_error(&got[0][row * V], &want[row * V], V));
  EXPECT_LT(worst, 1e-5) << name;
  std::printf("[ %s ] TP=2 vs one process: max relative difference %.3g\n", name.c_str(), worst);
}

// Split by output rows (tp_exact), nothing is summed in another order: the logits are one
// process's bit for bit.
TEST_P(TensorParallelArch, ExactModeGivesOneProcessBits) {
  const std::string name = GetParam();
  const Reference ref = load_reference(name);
  auto single = load_model(kDir + name + ".gguf", tp_options(nullptr));
  const std::vector<float> want = all_logits(*single, ref);
  std::vector<std::vector<float>> got(2);
  testing::run_ranks(2, [&](dist::Communicator& c) {
    auto m = load_model(kDir + name + ".gguf", tp_options(&c, /*exact=*/true));
    got[c.rank()] = all_logits(*m, ref);
  });
  EXPECT_EQ(got[0], want) << name;
  EXPECT_EQ(got[1], want) << name;
}

INSTANTIATE_TEST_SUITE_P(Archs, TensorParallelArch,
                         ::testing::Values("llama", "mistral", "qwen3", "gemma3", "phi3", "chatglm",
                                           "glm4", "internlm2"));

std::string load_error(const std::string& name, int n_ranks) {
  std::vector<std::string> errors(n_ranks);
  testing::run_ranks(n_ranks, [&](dist::Communicator& c) {
    try {
      load_model(kDir + name + ".gguf", tp_options(&c));
    } catch (const Error& e) {
      errors[c.rank()] = e.what();
    }
  });
  for (const std::string& e : errors) EXPECT_EQ(e, errors[0]) << "ranks disagree";
  return errors[0];
}

TEST(TensorParallel, RefusesWhatItCannotSplit) {
  EXPECT_NE(
      load_error("llama", 3)
          .find("the number of attention heads (2) does not divide by the tensor-parallel size 3"),
      std::string::npos);
  EXPECT_NE(load_error("mixtral", 2).find("does not support llama models with experts"),
            std::string::npos);
  EXPECT_NE(load_error("baichuan13b", 2).find("with ALiBi"), std::string::npos);
}

}  // namespace
}  // namespace tessera
