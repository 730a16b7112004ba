// Encoders and embeddings against transformers (tests/data/encoders/refs.json, made by
// scripts/make_tiny_encoders.py): tiny random cross-encoders (BERT and RoBERTa heads) give
// its logits within 1e-4 from the Hugging Face directory and from the converted GGUF, with
// its token and segment ids; a RoBERTa embedding model (positions offset by padding_idx + 1)
// its mean-pooled hidden states; decoders used as embedders (--task embed) their final
// hidden states, last-token and mean pooled. Packed batches give each input what it gets
// alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "embed/batcher.h"
#include "embed/tokenize_inputs.h"
#include "loader/convert.h"
#include "loader/hf_source.h"
#include "loader/memory_source.h"
#include "models/encoder.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const std::string kDir = std::string(TESSERA_TEST_DATA) + "/encoders/";

const json& refs() {
  static const json r = json::parse(read_file(kDir + "refs.json"));
  return r;
}

// max |a - b| / max(|b|, 1e-6) over the vector.
double rel_error(const std::vector<float>& a, const std::vector<double>& b) {
  double d = 0, m = 1e-6;
  for (size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    m = std::max(m, std::fabs(b[i]));
  }
  return d / m;
}

// A GGUF copy of an HF directory, removed at the end of the test.
struct ConvertedGguf {
  explicit ConvertedGguf(const std::string& dir, DType type) {
    path = (fs::temp_directory_path() / ("tessera_enc_" + std::to_string(::getpid()) + "_" +
                                         fs::path(dir).filename().string() + ".gguf"))
               .string();
    auto src = hf::open_hf_directory(dir);
    convert_to_gguf(*src, static_cast<const gguf::MemorySource&>(*src).metadata(), path, type);
  }
  ~ConvertedGguf() { fs::remove(path); }
  std::string path;
};

std::vector<std::vector<float>> run_all(Model& model, const EmbedSettings& s,
                                        const std::vector<EmbedInput>& inputs) {
  EmbeddingRunner runner(model, s);
  std::vector<const EmbedInput*> ptrs;
  for (const EmbedInput& in : inputs) ptrs.push_back(&in);
  std::vector<std::vector<float>> out;
  runner.run(ptrs, out);
  // Each input alone gives exactly what it gets packed with the others.
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<std::vector<float>> one;
    const EmbedInput* p = &inputs[i];
    runner.run(std::span<const EmbedInput* const>(&p, 1), one);
    EXPECT_EQ(one[0], out[i]) << "input " << i << " depends on its batch";
  }
  return out;
}

void check_cross_encoder(const std::string& name, const std::string& path) {
  const json& ref = refs()[name];
  auto model = load_model(path, {.n_threads = 2});
  ASSERT_EQ(embedding_task(*model, "auto"), EmbedTask::SCORE);
  EXPECT_THROW(embedding_task(*model, "generate"), Error);
  EXPECT_THROW(embedding_task(*model, "embed"), Error);
  const EmbedSettings s = resolve_embed_settings(*model, EmbedTask::SCORE, {});
  EXPECT_EQ(s.max_len, 64);
  std::vector<EmbedInput> inputs;
  for (size_t i = 0; i < ref["pairs"].size(); ++i) {
    const std::string a = ref["pairs"][i][0], b = ref["pairs"][i][1];
    inputs.push_back(tokenize_pair(model->tokenizer(), a, b, s.max_len, true));
    EXPECT_EQ(inputs.back().tokens, ref["ids"][i].get<std::vector<int32_t>>()) << name << " " << i;
    if (!inputs.back().types.empty())
      EXPECT_EQ(inputs.back().types, ref["types"][i].get<std::vector<int32_t>>()) << i;
    else
      for (int t : ref["types"][i]) EXPECT_EQ(t, 0);
  }
  const auto out = run_all(*model, s, inputs);
  double worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].size(), 1u);
    const double want = ref["logits"][i];
    worst = std::max(worst, std::fabs(out[i][0] - want));
    EXPECT_NEAR(out[i][0], want, 1e-4) << name << " pair " << i;
  }
  std::printf("[ %s ] %s: max |logit - transformers| = %.2e over %zu pairs\n", name.c_str(),
              path.c_str(), worst, out.size());
}

TEST(Encoder, BertCrossEncoderMatchesTransformers) {
  check_cross_encoder("bert-cross", kDir + "bert-cross");
}

TEST(Encoder, BertCrossEncoderGgufMatchesTransformers) {
  ConvertedGguf g(kDir + "bert-cross", DType::F32);
  check_cross_encoder("bert-cross", g.path);
  // llama.cpp's names: the pooler as cls, the classifier as cls.output, rank pooling.
  auto f = gguf::File::open(g.path);
  EXPECT_TRUE(f->find_tensor("cls.weight"));
  EXPECT_TRUE(f->find_tensor("cls.output.weight"));
  EXPECT_EQ(f->get_int("bert.pooling_type").value_or(-1), 4);
  EXPECT_EQ(f->get_int("tokenizer.ggml.token_type_count").value_or(-1), 2);
  EXPECT_EQ(f->find_tensor("position_embd.weight")->type, DType::F32);
}

TEST(Encoder, RobertaCrossEncoderMatchesTransformers) {
  check_cross_encoder("roberta-cross", kDir + "roberta-cross");
  ConvertedGguf g(kDir + "roberta-cross", DType::F32);
  check_cross_encoder("roberta-cross", g.path);
}

TEST(Encoder, RobertaEmbeddingsMatchTransformers) {
  const json& ref = refs()["roberta"];
  auto model = load_model(kDir + "roberta", {.n_threads = 2});
  ASSERT_EQ(embedding_task(*model, "auto"), EmbedTask::EMBED);
  const EmbedSettings s = resolve_embed_settings(*model, EmbedTask::EMBED, {});
  EXPECT_EQ(s.pooling, Pooling::MEAN);  // from 1_Pooling/config.json
  EXPECT_FALSE(s.normalize);            // modules.json has no Normalize
  EXPECT_EQ(s.max_len, 64);             // 66 positions less the offset of 2
  std::vector<EmbedInput> inputs;
  for (size_t i = 0; i < ref["texts"].size(); ++i) {
    inputs.push_back(
        tokenize_text(model->tokenizer(), ref["texts"][i].get<std::string>(), s.max_len, true));
    EXPECT_EQ(inputs.back().tokens, ref["ids"][i].get<std::vector<int32_t>>()) << i;
  }
  const auto out = run_all(*model, s, inputs);
  for (size_t i = 0; i < out.size(); ++i) {
    const double e = rel_error(out[i], ref["mean"][i].get<std::vector<double>>());
    EXPECT_LT(e, 1e-4) << "text " << i;
  }
  // A position past the table is refused, not read out of bounds.
  EmbedInput too_long;
  too_long.tokens.assign(65, 5);
  EmbeddingRunner runner(*model, s);
  EXPECT_THROW(runner.check(too_long), Error);
}

// A copy of a test model directory with one file replaced, removed at the end of the test.
struct EditedDir {
  EditedDir(const std::string& from, const std::string& file, const std::string& content) {
    dir = fs::temp_directory_path() / ("tessera_enc_edit_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::copy(from, dir, fs::copy_options::recursive);
    fs::create_directories((dir / file).parent_path());
    std::ofstream(dir / file) << content;
  }
  ~EditedDir() { fs::remove_all(dir); }
  fs::path dir;
};

std::string load_error(const fs::path& dir) {
  try {
    auto m = load_model(dir.string(), {.n_threads = 1});
    resolve_embed_settings(*m, EmbedTask::EMBED, {});
  } catch (const Error& e) {
    return e.what();
  }
  return "<loaded>";
}

TEST(Encoder, RefusesWhatItDoesNotImplement) {
  const std::string src = kDir + "roberta";
  json cfg = json::parse(read_file(src + "/config.json"));
  auto with_config = [&](const char* key, const json& value) {
    json c = cfg;
    c[key] = value;
    return EditedDir(src, "config.json", c.dump());
  };
  {
    EditedDir d = with_config("hidden_act", "gelu_new");
    EXPECT_NE(load_error(d.dir).find("hidden_act 'gelu_new' is not supported"), std::string::npos);
  }
  {
    EditedDir d = with_config("position_embedding_type", "relative_key");
    EXPECT_NE(load_error(d.dir).find("relative_key"), std::string::npos);
  }
  {
    EditedDir d(src, "modules.json",
                R"([{"type": "sentence_transformers.models.Transformer", "path": ""},
                    {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}])");
    EXPECT_NE(load_error(d.dir).find("sentence_transformers.models.Dense"), std::string::npos);
  }
  {
    EditedDir d(src, "1_Pooling/config.json", R"({"pooling_mode_max_tokens": true})");
    EXPECT_NE(load_error(d.dir).find("pooling must be exactly one of"), std::string::npos);
  }
  {
    EditedDir d(src, "sentence_bert_config.json", R"({"max_seq_length": 16})");
    auto m = load_model(d.dir.string(), {.n_threads = 1});
    EXPECT_EQ(resolve_embed_settings(*m, EmbedTask::EMBED, {}).max_len, 16);
    EmbedOptions o;
    o.max_model_len = 64;  // up to the model's positions
    EXPECT_EQ(resolve_embed_settings(*m, EmbedTask::EMBED, o).max_len, 64);
    o.max_model_len = 65;
    EXPECT_THROW(resolve_embed_settings(*m, EmbedTask::EMBED, o), Error);
    o.max_model_len = 0;
    o.max_batch_tokens = 8;  // smaller than one input
    EXPECT_THROW(resolve_embed_settings(*m, EmbedTask::EMBED, o), Error);
  }
}

class DecoderEmbedding : public ::testing::TestWithParam<std::string> {};

TEST_P(DecoderEmbedding, HiddenStatesMatchTransformers) {
  const std::string name = GetParam();
  const json& ref = refs()["decoders"][name];
  const std::string dir = std::string(TESSERA_TEST_DATA) + "/archs/hf/" + name;
  auto model = load_model(dir, {.n_threads = 2, .kv_cache_type = "f32"});
  EXPECT_FALSE(embedding_task(*model, "auto"));  // a decoder generates unless told
  ASSERT_EQ(embedding_task(*model, "embed"), EmbedTask::EMBED);
  EXPECT_THROW(embedding_task(*model, "score"), Error);
  std::vector<EmbedInput> inputs;
  for (const json& p : ref["prompts"]) inputs.push_back({p.get<std::vector<int32_t>>(), {}});
  for (const char* pooling : {"last", "mean"}) {
    EmbedOptions o;
    o.pooling = pooling;
    const EmbedSettings s = resolve_embed_settings(*model, EmbedTask::EMBED, o);
    const auto out = run_all(*model, s, inputs);
    double worst = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const double e = rel_error(out[i], ref[pooling][i].get<std::vector<double>>());
      worst = std::max(worst, e);
      EXPECT_LT(e, 1e-4) << name << " " << pooling << " prompt " << i;
    }
    std::printf("[ %s ] %s pooling: max relative error %.2e\n", name.c_str(), pooling, worst);
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, DecoderEmbedding, ::testing::Values("llama", "qwen3"));

TEST(Embedding, FinishTruncatesThenNormalizes) {
  std::vector<float> v = {3, 4, 12};
  finish_embedding(v, 2, true);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> z = {0, 0};
  finish_embedding(z, 0, true);
  EXPECT_EQ(z, (std::vector<float>{0, 0}));
}

TEST(Embedding, PairTruncationIsLongestFirst) {
  auto model = load_model(kDir + "bert-cross", {.n_threads = 1});
  const Tokenizer& tok = model->tokenizer();
  const std::string short_q = "dog";
  std::string words;
  for (int i = 0; i < 100; ++i) words += "cat ";
  // The long text absorbs the whole cut; the short one keeps its tokens.
  EmbedInput in = tokenize_pair(tok, short_q, words, 20, true);
  EXPECT_EQ(in.tokens.size(), 20u);
  EXPECT_EQ(in.tokens[1], tok.encode("dog", false, true)[0]);
  EXPECT_THROW(tokenize_pair(tok, short_q, words, 20, false), Error);
  // Both long: about half each.
  in = tokenize_pair(tok, words, words, 21, true);
  EXPECT_EQ(in.tokens.size(), 21u);
  EXPECT_EQ(std::count(in.types.begin(), in.types.end(), 1), 10);  // 9 + [SEP]
}

TEST(Embedding, BatcherSplitsRequestsIntoBudgetedPasses) {
  auto model = load_model(kDir + "roberta", {.n_threads = 1});
  EmbedOptions o;
  o.max_batch_tokens = 64;  // one pass holds one long input, or several short ones
  o.max_batch_seqs = 3;
  const EmbedSettings s = resolve_embed_settings(*model, EmbedTask::EMBED, o);
  EmbeddingRunner runner(*model, s);
  std::vector<EmbedInput> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back({std::vector<int32_t>(5 + 6 * i, 7 + i), {}});
  std::vector<std::vector<float>> alone;
  for (const EmbedInput& in : inputs) {
    const EmbedInput* p = &in;
    std::vector<std::vector<float>> one;
    runner.run(std::span<const EmbedInput* const>(&p, 1), one);
    alone.push_back(one[0]);
  }
  EmbedBatcher batcher(runner, 12);
  EXPECT_THROW(batcher.submit(std::vector<EmbedInput>(13, inputs[0])), Error);  // never fits
  auto a = batcher.submit(inputs);
  ASSERT_TRUE(a->wait(std::chrono::seconds(30)));
  EXPECT_TRUE(a->error().empty());
  EXPECT_EQ(a->outputs(), alone);
  auto b = batcher.submit(std::vector<EmbedInput>(inputs.begin(), inputs.begin() + 2));
  ASSERT_TRUE(b->wait(std::chrono::seconds(30)));
  EXPECT_EQ(b->outputs()[1], alone[1]);
  const EmbedBatcherStats st = batcher.stats();
  EXPECT_EQ(st.requests, 2);  // the refused one is not counted
  EXPECT_EQ(st.inputs, 12);
  EXPECT_GE(st.batches, 5);  // 10 inputs of up to 59 tokens in passes of <= 64 tokens / 3 inputs
  EXPECT_EQ(batcher.n_inflight(), 0);
}

}  // namespace
}  // namespace tessera
