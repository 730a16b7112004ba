// Each architecture family against a reference implementation: tiny random-weight models in
// tests/data/archs/ (made by scripts/gen_arch_refs.py or gen_arch_refs_llamacpp.py), whose
// reference logits come from Hugging Face transformers (or llama.cpp for the families
// transformers has no code for). Every position of every prompt must match within 1e-3
// relative: max |ours - ref| over the vocabulary / max |ref|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "arch_reference.h"
#include "engine/sequence_runner.h"
#include "models/model.h"

namespace tessera {
namespace {

using archref::kDir;
using archref::load_reference;
using archref::Reference;
using archref::rel_error;

// (architecture, backend): every architecture runs on the cpu backend and on the ref
// backend (the scalar references), through the same model code.
class ArchReference : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

ModelOptions arch_options(const std::string& backend) {
  // An f32 KV cache: the references are float32 implementations.
  return {.n_threads = 2, .kv_cache_type = "f32", .backend = backend};
}

// The whole prompt in one batch (prefill), and again one token at a time (decode through
// the KV cache): both must match the reference at every position.
TEST_P(ArchReference, LogitsMatch) {
  const auto& [name, backend] = GetParam();
  const Reference ref = load_reference(name);
  auto model = load_model(kDir + name + ".gguf", arch_options(backend));
  ASSERT_EQ(model->config().n_vocab, ref.n_vocab);
  const int V = ref.n_vocab;
  size_t row = 0;
  double worst = 0.0;
  for (const auto& prompt : ref.prompts) {
    const int n = static_cast<int>(prompt.size());
    std::vector<int32_t> want;
    for (int i = ref.last_only ? n - 1 : 0; i < n; ++i) want.push_back(i);
    for (int n_batch : {n, 1}) {
      SequenceRunner runner(*model, 64);
      std::vector<float> logits(want.size() * V);
      runner.eval(prompt, want, logits.data(), n_batch);
      if (ref.centered)
        for (size_t k = 0; k < want.size(); ++k) {
          double mean = 0.0;
          for (int i = 0; i < V; ++i) mean += logits[k * V + i];
          mean /= V;
          for (int i = 0; i < V; ++i) logits[k * V + i] -= static_cast<float>(mean);
        }
      for (size_t k = 0; k < want.size(); ++k) {
        const double e = rel_error(&logits[k * V], &ref.logits[(row + k) * V], V);
        worst = std::max(worst, e);
        EXPECT_LT(e, 1e-3) << name << ": prompt of " << n << " tokens, position " << want[k]
                           << ", batch " << n_batch;
      }
    }
    row += want.size();
  }
  RecordProperty("max_rel_error", std::to_string(worst));
  std::printf("[ %s, %s ] max relative error %.3g\n", name.c_str(), backend.c_str(), worst);
}

// Two prompts interleaved token by token in one batch, their KV blocks interleaved in the
// cache (as the scheduler batches sequences): each must still match its reference.
TEST_P(ArchReference, TwoSequencesInOneBatch) {
  const auto& [name, backend] = GetParam();
  const Reference ref = load_reference(name);
  auto model = load_model(kDir + name + ".gguf", arch_options(backend));
  const int V = ref.n_vocab, bs = 4;
  // Prompts 2 and 1 (24 and 11 tokens) and where their reference rows start.
  const std::vector<int32_t>& a = ref.prompts[2];
  const std::vector<int32_t>& b = ref.prompts[1];
  const size_t row_b = ref.last_only ? 1 : ref.prompts[0].size();
  const size_t row_a = ref.last_only ? 2 : ref.prompts[0].size() + b.size();
  auto kv = model->make_kv_cache(16, bs);
  std::vector<int32_t> table_a, table_b;  // a: even blocks, b: odd blocks
  for (int i = 0; i < 8; ++i) {
    table_a.push_back(2 * i);
    table_b.push_back(2 * i + 1);
  }
  const int32_t* tables[2] = {table_a.data(), table_b.data()};
  std::vector<int32_t> tokens, pos, seq, slots, out;
  std::vector<size_t> ref_row;  // reference row of each output
  auto add = [&](const std::vector<int32_t>& p, int s, const std::vector<int32_t>& table, int i,
                 size_t row0) {
    const int n = static_cast<int>(p.size());
    if (!ref.last_only || i == n - 1) {
      out.push_back(static_cast<int32_t>(tokens.size()));
      ref_row.push_back(row0 + (ref.last_only ? 0 : i));
    }
    tokens.push_back(p[i]);
    pos.push_back(i);
    seq.push_back(s);
    slots.push_back(table[i / bs] * bs + i % bs);
  };
  for (size_t i = 0; i < a.size(); ++i) {
    add(a, 0, table_a, static_cast<int>(i), row_a);
    if (i < b.size()) add(b, 1, table_b, static_cast<int>(i), row_b);
  }
  ForwardBatch fb;
  fb.n_tokens = static_cast<int>(tokens.size());
  fb.tokens = tokens.data();
  fb.pos = pos.data();
  fb.seq_of = seq.data();
  fb.slots = slots.data();
  fb.block_tables = tables;
  fb.n_out = static_cast<int>(out.size());
  fb.out_rows = out.data();
  std::vector<float> logits(out.size() * V);
  model->forward(fb, *kv, logits.data());
  for (size_t k = 0; k < out.size(); ++k) {
    float* row = &logits[k * V];
    if (ref.centered) {
      double mean = 0.0;
      for (int i = 0; i < V; ++i) mean += row[i];
      for (int i = 0; i < V; ++i) row[i] -= static_cast<float>(mean / V);
    }
    EXPECT_LT(rel_error(row, &ref.logits[ref_row[k] * V], V), 1e-3)
        << name << ": output " << k << " (batch row " << out[k] << ")";
  }
}

std::vector<std::string> cases() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(kDir))
    if (e.path().extension() == ".gguf") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchReference,
                         ::testing::Combine(::testing::ValuesIn(cases()),
                                            ::testing::Values("cpu", "ref")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace tessera
