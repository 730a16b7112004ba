// Tensor parallelism of the decoder, with ranks as threads of this process: every
// architecture's tiny model at TP=2 (their single KV head held by both ranks) gives the
// logits of one process (which test_archs.cpp checks against the references) within float
// rounding, the row-parallel sums being split in two, and the same bits on both ranks, each
// rank holding only its half of the output head's vocabulary rows;
// ALiBi (Baichuan 13B) takes each rank's heads' slopes from their index among all heads;
// mixture-of-experts models (Mixtral, Qwen2-MoE with its shared expert, Qwen3-MoE) split
// every expert and replicate the router, and refuse exact mode. Shapes that cannot be
// split are refused with a clear error. Pipeline
// parallelism (ranks as stages, layers split between them) gives one process's logits bit
// for bit, on every rank, alone and under TP.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
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

ModelOptions tp_options(dist::Communicator* comm, bool exact = false, int pp = 1) {
  // An f32 KV cache: the references are float32 implementations.
  return {.n_threads = 1,
          .kv_cache_type = "f32",
          .comm = comm,
          .pipeline_parallel_size = pp,
          .tp_exact = exact};
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

// Mixture-of-experts models: tensor parallelism splits their experts' sums (exact mode is
// refused for them).
bool has_experts(const std::string& name) {
  return name == "mixtral" || name == "qwen2moe" || name == "qwen3moe";
}

std::string load_error(const std::string& name, int n_ranks, int pp = 1, bool exact = false);

class TensorParallelArch : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallelArch, TwoRanksGiveOneProcessLogits) {
  const std::string name = GetParam();
  const Reference ref = load_reference(name);
  auto single = load_model(kDir + name + ".gguf", tp_options(nullptr));
  const std::vector<float> want = all_logits(*single, ref);

  std::vector<std::vector<float>> got(2);
  std::vector<int> kv_dims(2);
  std::vector<int64_t> head_rows(2);
  testing::run_ranks(2, [&](dist::Communicator& c) {
    auto m = load_model(kDir + name + ".gguf", tp_options(&c));
    kv_dims[c.rank()] = m->kv_dim_local();
    head_rows[c.rank()] = m->head_rows_local();
    got[c.rank()] = all_logits(*m, ref);
  });
  // One KV head: each rank holds it (and its cache) whole; two (Baichuan): one each.
  const int n_kv = single->config().n_head_kv;
  EXPECT_EQ(kv_dims[0], single->kv_dim_local() / std::min(n_kv, 2));
  EXPECT_EQ(kv_dims[1], kv_dims[0]);
  // The head: every vocabulary row on one rank, about half on each (whole groups of 8).
  EXPECT_EQ(single->head_rows_local(), ref.n_vocab);
  EXPECT_EQ(head_rows[0] + head_rows[1], ref.n_vocab);
  for (const int64_t rows : head_rows) EXPECT_LE(std::abs(2 * rows - ref.n_vocab), 8) << name;
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
  if (has_experts(name)) {
    EXPECT_NE(load_error(name, 2, 1, /*exact=*/true).find("--tp-exact does not support"),
              std::string::npos);
    return;
  }
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

// Weights converted as they load (F16 here) take the other way of the head's rows: a copy
// of the rank's rows, converted, where unconverted rows are read in place (the test above).
// Either way the logits are one process's (converted the same way) bit for bit.
TEST_P(TensorParallelArch, ConvertedHeadGivesOneProcessBits) {
  const std::string name = GetParam();
  if (has_experts(name)) return;  // exact mode is refused for them (the test above)
  const Reference ref = load_reference(name);
  ModelOptions one = tp_options(nullptr);
  one.quantization = "f16";
  auto single = load_model(kDir + name + ".gguf", one);
  const std::vector<float> want = all_logits(*single, ref);
  std::vector<std::vector<float>> got(2);
  std::vector<int64_t> head_rows(2);
  testing::run_ranks(2, [&](dist::Communicator& c) {
    ModelOptions o = tp_options(&c, /*exact=*/true);
    o.quantization = "f16";
    auto m = load_model(kDir + name + ".gguf", o);
    head_rows[c.rank()] = m->head_rows_local();
    got[c.rank()] = all_logits(*m, ref);
  });
  EXPECT_EQ(head_rows[0] + head_rows[1], ref.n_vocab);
  EXPECT_GT(head_rows[0] * head_rows[1], 0);
  EXPECT_EQ(got[0], want) << name;
  EXPECT_EQ(got[1], want) << name;
}

// A prompt of n tokens (ids spread over the vocabulary) and its logits at every position,
// fed in batches of n_batch: long enough that a pipeline cuts it into micro-batches.
std::vector<float> long_prompt_logits(Model& m, int n, int n_batch) {
  const int V = m.config().n_vocab;
  std::vector<int32_t> prompt(n), want(n);
  for (int i = 0; i < n; ++i) {
    prompt[i] = static_cast<int32_t>((7 * i + 1) % V);
    want[i] = i;
  }
  SequenceRunner runner(m, n + 1);
  std::vector<float> logits(static_cast<size_t>(n) * V);
  runner.eval(prompt, want, logits.data(), n_batch);
  return logits;
}

// Pipeline parallelism splits no sum: stages pass whole activations, so every rank's
// logits are one process's bit for bit, whether a batch is one micro-batch or several
// (96 rows: 4 micro-batches on 2 stages), and each stage holds the KV cache of its layer.
TEST_P(TensorParallelArch, PipelineGivesOneProcessBits) {
  const std::string name = GetParam();
  const Reference ref = load_reference(name);
  auto single = load_model(kDir + name + ".gguf", tp_options(nullptr));
  std::vector<float> want = all_logits(*single, ref);
  for (int n_batch : {96, 40, 7}) {
    const std::vector<float> l = long_prompt_logits(*single, 96, n_batch);
    want.insert(want.end(), l.begin(), l.end());
  }
  std::vector<std::vector<float>> got(2);
  std::vector<int> n_layers(2);
  std::vector<int64_t> head_rows(2);
  testing::run_ranks(2, [&](dist::Communicator& c) {
    auto m = load_model(kDir + name + ".gguf", tp_options(&c, false, /*pp=*/2));
    n_layers[c.rank()] = m->n_layer_local();
    head_rows[c.rank()] = m->head_rows_local();
    got[c.rank()] = all_logits(*m, ref);
    for (int n_batch : {96, 40, 7}) {
      const std::vector<float> l = long_prompt_logits(*m, 96, n_batch);
      got[c.rank()].insert(got[c.rank()].end(), l.begin(), l.end());
    }
  });
  EXPECT_EQ(n_layers[0] + n_layers[1], single->config().n_layer);
  EXPECT_EQ(n_layers[0], (single->config().n_layer + 1) / 2);
  EXPECT_EQ(head_rows[0], 0);  // the head is the last stage's, whole without TP
  EXPECT_EQ(head_rows[1], ref.n_vocab);
  EXPECT_EQ(got[0], want) << name;
  EXPECT_EQ(got[1], want) << name;
}

// TP=2 within each of 2 pipeline stages (4 ranks): the TP sums split as at TP=2, the same
// bits on every rank; with tp_exact, one process's bits.
TEST_P(TensorParallelArch, TensorTimesPipeline) {
  const std::string name = GetParam();
  const Reference ref = load_reference(name);
  auto single = load_model(kDir + name + ".gguf", tp_options(nullptr));
  const std::vector<float> want = all_logits(*single, ref);
  for (const bool exact : {false, true}) {
    if (exact && has_experts(name)) {
      EXPECT_NE(load_error(name, 4, 2, exact).find("--tp-exact does not support"),
                std::string::npos);
      continue;
    }
    std::vector<std::vector<float>> got(4);
    std::vector<int64_t> head_rows(4);
    testing::run_ranks(4, [&](dist::Communicator& c) {
      auto m = load_model(kDir + name + ".gguf", tp_options(&c, exact, /*pp=*/2));
      head_rows[c.rank()] = m->head_rows_local();
      got[c.rank()] = all_logits(*m, ref);
    });
    // Ranks 0-1 are stage 0, 2-3 the last stage, which splits the head between them.
    EXPECT_EQ(head_rows[0] + head_rows[1], 0);
    EXPECT_EQ(head_rows[2] + head_rows[3], ref.n_vocab);
    EXPECT_GT(head_rows[2] * head_rows[3], 0);
    for (int r = 1; r < 4; ++r) EXPECT_EQ(got[r], got[0]) << name << " rank " << r;
    if (exact) {
      EXPECT_EQ(got[0], want) << name;
      continue;
    }
    ASSERT_EQ(got[0].size(), want.size());
    const int V = ref.n_vocab;
    double worst = 0.0;
    for (size_t row = 0; row < want.size() / V; ++row)
      worst = std::max(worst, rel_error(&got[0][row * V], &want[row * V], V));
    EXPECT_LT(worst, 1e-5) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, TensorParallelArch,
                         ::testing::Values("llama", "mistral", "qwen3", "gemma3", "phi3", "chatglm",
                                           "glm4", "internlm2", "baichuan13b", "mixtral",
                                           "qwen2moe", "qwen3moe"));

std::string load_error(const std::string& name, int n_ranks, int pp, bool exact) {
  std::vector<std::string> errors(n_ranks);
  testing::run_ranks(n_ranks, [&](dist::Communicator& c) {
    try {
      load_model(kDir + name + ".gguf", tp_options(&c, exact, pp));
    } catch (const Error& e) {
      errors[c.rank()] = e.what();
    }
  });
  for (const std::string& e : errors) EXPECT_EQ(e, errors[0]) << "ranks disagree";
  return errors[0];
}

TEST(TensorParallel, RefusesWhatItCannotSplit) {
  EXPECT_NE(load_error("llama", 3)
                .find("the query heads of KV head 0 (2) cannot be split among 3 tensor-parallel "
                      "ranks"),
            std::string::npos);
  // Exact mode would gather every expert's rows: refused for experts.
  EXPECT_NE(load_error("mixtral", 2, 1, /*exact=*/true)
                .find("--tp-exact does not support llama models with experts: leave it out to "
                      "split them"),
            std::string::npos);
  // Pipelines: more stages than layers (2), a world that is not stages x TP ranks.
  EXPECT_NE(load_error("llama", 3, 3).find("a pipeline of 3 stages needs at least as many layers"),
            std::string::npos);
  EXPECT_NE(load_error("llama", 3, 2).find("is not a multiple of the pipeline-parallel size 2"),
            std::string::npos);
  // A pipeline alone splits no sum: experts and ALiBi run in stages.
  EXPECT_EQ(load_error("mixtral", 2, 2), "");
}

}  // namespace
}  // namespace tessera
