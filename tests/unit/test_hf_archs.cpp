// Every architecture the Hugging Face loader translates, against transformers: the tiny
// random-weight HF directories in tests/data/archs/hf/<name>/ (kept by
// scripts/gen_arch_refs.py, the same weights as <name>.gguf) load through load_model and
// must give transformers' float32 logits (<name>.logits.f32) within 1e-3 relative at every
// position of every prompt (max |ours - ref| over the vocabulary / max |ref|), in one batch
// and one token at a time. After `tessera convert` to an F16 GGUF, the same comparison
// within the same 1e-3 (kF16Tolerance).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch_reference.h"
#include "engine/sequence_runner.h"
#include "loader/convert.h"
#include "loader/hf_source.h"
#include "loader/memory_source.h"
#include "models/model.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using archref::kDir;
using archref::load_reference;
using archref::Reference;
using archref::rel_error;

// The directories hold BF16 weights (as published checkpoints do), every one of which F16
// represents exactly outside f16's subnormal range, so the converted file computes the
// same model and must meet the same bound as the directory itself.
constexpr double kF16Tolerance = 1e-3;

// Worst relative error of `path` (an HF directory or a GGUF file) over every position of
// every prompt, whole-prompt batch and token by token; each must be below `tol`.
double compare(const std::string& name, const std::string& path, double tol) {
  const Reference ref = load_reference(name);
  auto model = load_model(path, {.n_threads = 2, .kv_cache_type = "f32"});
  EXPECT_EQ(model->config().n_vocab, ref.n_vocab) << path;
  const int V = ref.n_vocab;
  size_t row = 0;
  double worst = 0.0;
  for (const auto& prompt : ref.prompts) {
    const int n = static_cast<int>(prompt.size());
    std::vector<int32_t> want(n);
    for (int i = 0; i < n; ++i) want[i] = i;
    for (int n_batch : {n, 1}) {
      SequenceRunner runner(*model, 64);
      std::vector<float> logits(static_cast<size_t>(n) * V);
      runner.eval(prompt, want, logits.data(), n_batch);
      for (int k = 0; k < n; ++k) {
        const double e = rel_error(&logits[k * V], &ref.logits[(row + k) * V], V);
        worst = std::max(worst, e);
        EXPECT_LT(e, tol) << path << ": prompt of " << n << " tokens, position " << k << ", batch "
                          << n_batch;
      }
    }
    row += n;
  }
  return worst;
}

class HfArch : public ::testing::TestWithParam<std::string> {};

TEST_P(HfArch, DirectoryMatchesTransformers) {
  const std::string name = GetParam();
  const double e = compare(name, kDir + "hf/" + name, 1e-3);
  RecordProperty("max_rel_error", std::to_string(e));
  std::printf("[ hf/%s ] max relative error %.3g\n", name.c_str(), e);
}

TEST_P(HfArch, F16ConversionMatchesTransformers) {
  const std::string name = GetParam();
  const fs::path out = fs::temp_directory_path() /
                       ("tessera_hf_arch_" + name + "_" + std::to_string(::getpid()) + ".gguf");
  {
    auto src = hf::open_hf_directory(kDir + "hf/" + name);
    convert_to_gguf(*src, static_cast<const gguf::MemorySource&>(*src).metadata(), out.string(),
                    DType::F16);
  }
  const double e = compare(name, out.string(), kF16Tolerance);
  fs::remove(out);
  RecordProperty("max_rel_error", std::to_string(e));
  std::printf("[ hf/%s -> f16 gguf ] max relative error %.3g\n", name.c_str(), e);
}

std::vector<std::string> cases() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kDir + "hf"))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Archs, HfArch, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tessera
