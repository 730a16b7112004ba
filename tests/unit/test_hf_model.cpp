// Hugging Face model directories end to end: a tiny random Llama / Qwen2 checkpoint
// (config.json + tokenizer files + safetensors, written here) loads through load_model,
// and gives the same logits as the same weights written to GGUF by convert_to_gguf
// (which permutes Q/K for the interleaved RoPE) and loaded back. Also: load-time
// quantization, dummy weights, Llama 3 RoPE factors, and refusal of broken directories.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/quants.h"
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "error_testing.h"
#include "loader/convert.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "loader/memory_source.h"
#include "models/model.h"
#include "models/weight_quant.h"
#include "tokenizer/unicode.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TinySpec {
  std::string arch = "LlamaForCausalLM";
  int hidden = 64, layers = 2, heads = 4, kv_heads = 2, ff = 96, vocab = 300;
  std::string dtype = "F32";  // safetensors dtype of the matrices
  bool tied = false;
  bool bias = false;  // q/k/v biases (Qwen2)
  bool llama3_rope = false;
  bool sharded = false;
  uint32_t seed = 7;
};

class TempDir {
 public:
  TempDir() {
    static int n = 0;
    path_ = fs::temp_directory_path() /
            ("tessera_hf_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  void write(const std::string& name, const std::string& s) const {
    std::ofstream(path_ / name, std::ios::binary) << s;
  }

 private:
  fs::path path_;
};

struct StTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

std::string safetensors_bytes(const std::vector<StTensor>& ts, const std::string& dtype) {
  json h = json::object();
  std::string data;
  for (const StTensor& t : ts) {
    const std::string dt = t.shape.size() == 1 ? "F32" : dtype;  // norms/biases stored F32
    std::string bytes;
    for (float v : t.values) {
      if (dt == "F32") {
        bytes.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        const uint16_t x = dt == "F16" ? cpu::fp32_to_fp16(v) : cpu::fp32_to_bf16(v);
        bytes.append(reinterpret_cast<const char*>(&x), 2);
      }
    }
    h[t.name] = {{"dtype", dt},
                 {"shape", t.shape},
                 {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  h["__metadata__"] = {{"format", "pt"}};
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8 != 0) hs += ' ';
  std::string out(8, '\0');
  const uint64_t n = hs.size();
  std::memcpy(out.data(), &n, 8);
  return out + hs + data;
}

// Byte-level BPE over the 256 byte tokens, a few merges, two special tokens, and the
// Llama 3 Split pre-tokenizer; config.json's vocab_size pads it with unused ids.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[unicode::byte_to_unicode(static_cast<uint8_t>(b))] = b;
  const std::string sp = unicode::byte_to_unicode(' ');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {sp, "t"}, {"h", "e"}, {sp + "t", "he"}, {"o", "n"}, {sp, "a"}};
  json jm = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    jm.push_back(a + " " + b);
  }
  json added = json::array({{{"id", 261}, {"content", "<|begin_of_text|>"}, {"special", true}},
                            {{"id", 262}, {"content", "<|end_of_text|>"}, {"special", true}},
                            {{"id", 263}, {"content", "<|eot_id|>"}, {"special", true}}});
  return {
      {"added_tokens", added},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"}},
          {{"type", "ByteLevel"}, {"use_regex", false}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}, {"ignore_merges", true}}}};
}

void write_tiny_model(const TempDir& d, const TinySpec& s) {
  const int hd = s.hidden / s.heads;
  json cfg = {{"architectures", {s.arch}},
              {"hidden_size", s.hidden},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv_heads},
              {"intermediate_size", s.ff},
              {"vocab_size", s.vocab},
              {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", s.tied},
              {"bos_token_id", 261},
              {"eos_token_id", 262}};
  if (s.llama3_rope)
    cfg["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 32}};
  d.write("config.json", cfg.dump(2));
  d.write("tokenizer.json", tiny_tokenizer().dump());
  d.write(
      "tokenizer_config.json",
      R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": "{{ messages }}"})");
  d.write("generation_config.json", R"({"eos_token_id": [262, 263]})");

  std::mt19937 rng(s.seed);
  std::normal_distribution<float> nd(0.0f, 0.15f);
  auto rnd = [&](std::vector<int64_t> shape, bool norm = false) {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    std::vector<float> v(n);
    for (float& x : v) x = norm ? 1.0f + 0.1f * nd(rng) : nd(rng);
    return v;
  };
  std::vector<StTensor> ts;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool norm = false) {
    ts.push_back({name, shape, rnd(shape, norm)});
  };
  const int q = s.heads * hd, kv = s.kv_heads * hd;
  add("model.embed_tokens.weight", {s.vocab, s.hidden});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, true);
    add(p + "self_attn.q_proj.weight", {q, s.hidden});
    add(p + "self_attn.k_proj.weight", {kv, s.hidden});
    add(p + "self_attn.v_proj.weight", {kv, s.hidden});
    if (s.bias) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    add(p + "self_attn.o_proj.weight", {s.hidden, q});
    add(p + "post_attention_layernorm.weight", {s.hidden}, true);
    add(p + "mlp.gate_proj.weight", {s.ff, s.hidden});
    add(p + "mlp.up_proj.weight", {s.ff, s.hidden});
    add(p + "mlp.down_proj.weight", {s.hidden, s.ff});
  }
  add("model.norm.weight", {s.hidden}, true);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden});
  if (!s.sharded) {
    d.write("model.safetensors", safetensors_bytes(ts, s.dtype));
    return;
  }
  const size_t half = ts.size() / 2;
  std::vector<StTensor> a(ts.begin(), ts.begin() + half), b(ts.begin() + half, ts.end());
  d.write("model-00001-of-00002.safetensors", safetensors_bytes(a, s.dtype));
  d.write("model-00002-of-00002.safetensors", safetensors_bytes(b, s.dtype));
  json wm = json::object();
  for (const auto& t : a) wm[t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) wm[t.name] = "model-00002-of-00002.safetensors";
  d.write("model.safetensors.index.json",
          json{{"metadata", json::object()}, {"weight_map", wm}}.dump());
}

// Logits of every position of a fixed token sequence (60 tokens, so RoPE angles matter).
std::vector<float> all_logits(Model& m) {
  std::vector<int32_t> toks;
  for (int i = 0; i < 60; ++i) toks.push_back((i * 37 + 11) % 261);
  std::vector<int32_t> want(toks.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int32_t>(i);
  std::vector<float> out(toks.size() * m.config().n_vocab);
  SequenceRunner r(m, 128);
  r.eval(toks, want, out.data(), 16);
  return out;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// RMS of a - b relative to the RMS of a.
float rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(a[i]) * a[i];
  }
  return static_cast<float>(std::sqrt(num / std::max(den, 1e-30)));
}

float max_abs(const std::vector<float>& a) {
  float m = 0;
  for (float x : a) m = std::max(m, std::fabs(x));
  return m;
}

using testing_util::error_of;

TEST(HfModel, LlamaMatchesConvertedGguf) {
  TempDir d;
  write_tiny_model(d, {});
  auto hf = load_model(d.str(), {.n_threads = 1, .kv_cache_type = "f32"});
  EXPECT_EQ(hf->config().arch, "llama");
  EXPECT_TRUE(hf->config().rope_neox);  // HF Q/K order, no permutation
  EXPECT_EQ(hf->config().n_vocab, 300);
  EXPECT_EQ(hf->config().n_head_kv, 2);
  const Tokenizer& tok = hf->tokenizer();
  EXPECT_EQ(tok.bos_id(), 261);
  EXPECT_TRUE(tok.is_eog(262));
  EXPECT_TRUE(tok.is_eog(263));
  EXPECT_EQ(tok.encode(" the", false, false), std::vector<int32_t>{258});
  EXPECT_EQ(hf->file().get_string("tokenizer.chat_template"), "{{ messages }}");
  const std::vector<float> ref = all_logits(*hf);
  ASSERT_GT(max_abs(ref), 0.1f);

  TempDir out;
  const std::string gguf = (out.path() / "tiny-f32.gguf").string();
  auto src = hf::open_hf_directory(d.str());
  const ConvertStats st = convert_to_gguf(
      *src, static_cast<const gguf::MemorySource&>(*src).metadata(), gguf, DType::F32);
  EXPECT_EQ(st.n_permuted, 4);  // attn_q and attn_k of 2 layers
  auto g = load_model(gguf, {.n_threads = 1, .kv_cache_type = "f32"});
  EXPECT_FALSE(g->config().rope_neox);  // permuted to GGUF's interleaved order
  EXPECT_EQ(g->file().find(hf::kRopeNeoxKey), nullptr);
  EXPECT_EQ(g->file().get_string("tokenizer.ggml.pre"), "llama-bpe");
  EXPECT_TRUE(g->tokenizer().is_eog(263));
  const float diff = max_abs_diff(ref, all_logits(*g));
  std::printf("[ logits   ] HF dir vs converted F32 GGUF: max |diff| = %.3g (max |logit| %.3g)\n",
              diff, max_abs(ref));
  EXPECT_LT(diff, 1e-4f);

  // Without the permutation the converted model would be wrong: keep the HF order but
  // drop the NeoX key, and the logits must differ.
  gguf::MemorySource& ms =
      const_cast<gguf::MemorySource&>(static_cast<const gguf::MemorySource&>(*src));
  ms.set_bool(hf::kRopeNeoxKey, false);
  const std::string wrong = (out.path() / "wrong.gguf").string();
  EXPECT_EQ(convert_to_gguf(*src, ms.metadata(), wrong, DType::F32).n_permuted, 0);
  EXPECT_GT(
      max_abs_diff(ref, all_logits(*load_model(wrong, {.n_threads = 1, .kv_cache_type = "f32"}))),
      1e-2f);

  // F16 / Q8_0 files: close to the F32 logits.
  for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0}) {
    auto s2 = hf::open_hf_directory(d.str());
    const std::string p = (out.path() / "tiny-q.gguf").string();
    convert_to_gguf(*s2, static_cast<const gguf::MemorySource&>(*s2).metadata(), p, t);
    auto m = load_model(p, {.n_threads = 1, .kv_cache_type = "f32"});
    const float dq = rel_rms(ref, all_logits(*m));
    std::printf("[ logits   ] converted %s: relative RMS diff vs F32 = %.3g\n", dtype_name(t), dq);
    EXPECT_LT(dq, t == DType::F16    ? 0.005f
                  : t == DType::Q8_0 ? 0.1f
                                     : 0.7f);  // random weights: 4 bits hurt
  }
}

TEST(HfModel, Float16ShardedTiedQwen2) {
  TempDir d;
  TinySpec s;
  s.arch = "Qwen2ForCausalLM";
  s.bias = true;
  s.tied = true;
  s.sharded = true;
  s.dtype = "BF16";
  write_tiny_model(d, s);
  auto hf = load_model(d.str(), {.n_threads = 1, .kv_cache_type = "f32"});
  EXPECT_EQ(hf->config().arch, "qwen2");
  EXPECT_TRUE(hf->config().rope_neox);
  EXPECT_EQ(hf->file().find(hf::kRopeNeoxKey), nullptr);        // qwen2 GGUFs are NeoX already
  EXPECT_EQ(hf->file().find_tensor("output.weight"), nullptr);  // tied
  EXPECT_EQ(hf->file().find_tensor("blk.0.attn_q.bias")->type, DType::F32);
  EXPECT_EQ(hf->file().find_tensor("blk.0.attn_q.weight")->type, DType::BF16);
  const std::vector<float> ref = all_logits(*hf);
  TempDir out;
  const std::string p = (out.path() / "q.gguf").string();
  auto src = hf::open_hf_directory(d.str());
  EXPECT_EQ(
      convert_to_gguf(*src, static_cast<const gguf::MemorySource&>(*src).metadata(), p, DType::BF16)
          .n_permuted,
      0);
  EXPECT_LT(max_abs_diff(ref, all_logits(*load_model(p, {.n_threads = 1, .kv_cache_type = "f32"}))),
            1e-4f);
}

TEST(HfModel, Llama3RopeFactors) {
  // The three bands: short wavelengths keep 1, long ones get `factor`, the middle blends.
  const std::vector<float> f = hf::llama3_rope_factors(128, 500000.0, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[63], 8.0f);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);
  // Pair j has wavelength 2*pi*500000^(2j/128); the smooth band lies between 2048 and 8192.
  const int j = 32;
  const double wl = 2 * M_PI * std::pow(500000.0, 2.0 * j / 128);
  ASSERT_TRUE(wl > 2048 && wl < 8192);
  const double smooth = (8192.0 / wl - 1.0) / 3.0;
  EXPECT_NEAR(f[j], 1.0 / ((1 - smooth) / 8.0 + smooth), 1e-5);
  EXPECT_GT(f[j], 1.0f);
  EXPECT_LT(f[j], 8.0f);

  TempDir d;
  TinySpec s;
  s.llama3_rope = true;
  write_tiny_model(d, s);
  auto hf = load_model(d.str(), {.n_threads = 1, .kv_cache_type = "f32"});
  const gguf::TensorInfo* rf = hf->file().find_tensor("rope_freqs.weight");
  ASSERT_NE(rf, nullptr);
  EXPECT_EQ(rf->n_elements(), 8);
  const std::vector<float> ref = all_logits(*hf);
  TempDir out;
  const std::string p = (out.path() / "l3.gguf").string();
  auto src = hf::open_hf_directory(d.str());
  convert_to_gguf(*src, static_cast<const gguf::MemorySource&>(*src).metadata(), p, DType::F32);
  auto g = load_model(p, {.n_threads = 1, .kv_cache_type = "f32"});
  ASSERT_NE(g->file().find_tensor("rope_freqs.weight"), nullptr);
  EXPECT_LT(max_abs_diff(ref, all_logits(*g)), 1e-4f);
  // and the factors change the result (positions beyond 32 / factor...)
  TempDir plain;
  write_tiny_model(plain, {});
  EXPECT_GT(max_abs_diff(ref, all_logits(*load_model(plain.str(),
                                                     {.n_threads = 1, .kv_cache_type = "f32"}))),
            1e-3f);
}

TEST(HfModel, LoadTimeQuantizationEqualsConvertedFile) {
  TempDir d;
  TinySpec s;
  s.dtype = "F16";
  write_tiny_model(d, s);
  const std::vector<float> f16 =
      all_logits(*load_model(d.str(), {.n_threads = 1, .kv_cache_type = "f32"}));
  TempDir out;
  for (const char* q : {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "bf16"}) {
    ModelOptions mo;
    mo.n_threads = 2;
    mo.quantization = q;
    mo.kv_cache_type = "f32";
    auto m = load_model(d.str(), mo);
    EXPECT_NE(m->file().find_tensor("blk.0.ffn_up.weight")->type, DType::Q8_0);  // source untouched
    const std::vector<float> lq = all_logits(*m);
    // The same quantizer over the same rows: a converted file gives the same logits.
    const DType t = *parse_weight_type(q);
    const std::string p = (out.path() / (std::string(q) + ".gguf")).string();
    auto src = hf::open_hf_directory(d.str());
    convert_to_gguf(*src, static_cast<const gguf::MemorySource&>(*src).metadata(), p, t);
    // (Not bit-exact: the two RoPE layouts sum q.k in different orders, and the Q8_0
    // activations of the next matmul can round such differences either way.)
    const float d_file =
        rel_rms(lq, all_logits(*load_model(p, {.n_threads = 1, .kv_cache_type = "f32"})));
    const float d_f16 = rel_rms(f16, lq);
    std::printf(
        "[ quant    ] load-time %-5s: relative RMS diff vs F16 %.4f, vs converted file %.2g\n", q,
        d_f16, d_file);
    EXPECT_LT(d_file, 0.01f) << q;
    EXPECT_GT(d_f16, 0.0f) << q;
    const std::string qs = q;
    EXPECT_LT(d_f16, qs == "bf16"           ? 0.02f
                     : qs == "q8_0"         ? 0.1f
                     : qs.starts_with("q5") ? 0.4f
                                            : 0.7f)
        << q;
  }
  ModelOptions bad;
  bad.quantization = "q3_k";
  EXPECT_NE(error_of([&] { load_model(d.str(), bad); }).find("unknown weight type 'q3_k'"),
            std::string::npos);
}

TEST(HfModel, DummyWeightsFromConfigAlone) {
  TempDir d;
  d.write("config.json", json{{"architectures", {"LlamaForCausalLM"}},
                              {"hidden_size", 64},
                              {"num_hidden_layers", 2},
                              {"num_attention_heads", 4},
                              {"num_key_value_heads", 2},
                              {"intermediate_size", 96},
                              {"vocab_size", 320},
                              {"head_dim", 16}}
                             .dump());
  ModelOptions mo;
  mo.n_threads = 1;
  mo.load_format = "dummy";
  mo.dummy_seed = 1;
  auto a = load_model((d.path() / "config.json").string(), mo);  // a file
  auto b = load_model(d.str(), mo);                              // or its directory
  EXPECT_EQ(a->config().n_vocab, 320);
  EXPECT_EQ(a->file().find_tensor("blk.1.attn_q.weight")->type, DType::F16);
  const std::vector<float> la = all_logits(*a);
  for (float x : la) ASSERT_TRUE(std::isfinite(x));
  EXPECT_EQ(la, all_logits(*b));  // deterministic
  mo.dummy_seed = 2;
  EXPECT_NE(la, all_logits(*load_model(d.str(), mo)));
  mo.quantization = "q4_0";
  auto q = load_model(d.str(), mo);
  // The dummy weights live in the source's own memory: repacked in place where the CPU has
  // the row-interleaved kernels, and the source then says so.
  const DType qt = q->file().find_tensor("blk.1.attn_q.weight")->type;
  EXPECT_EQ(qt, cpu::can_repack(DType::Q4_0) ? DType::Q4_0_R8 : DType::Q4_0);
  mo.repack = false;
  auto q_plain = load_model(d.str(), mo);
  EXPECT_EQ(q_plain->file().find_tensor("blk.1.attn_q.weight")->type, DType::Q4_0);
  EXPECT_EQ(all_logits(*q), all_logits(*q_plain));  // same numbers either layout
  EXPECT_EQ(q->file().find_tensor("blk.1.attn_norm.weight")->type, DType::F32);
  // Without dummy, a config.json alone is not a model.
  EXPECT_NE(error_of([&] { load_model((d.path() / "config.json").string(), {}); }).find("dummy"),
            std::string::npos);
}

TEST(HfModel, BrokenDirectoriesGiveClearErrors) {
  auto err = [](const std::function<void(const TempDir&)>& edit) {
    TempDir d;
    write_tiny_model(d, {});
    edit(d);
    return error_of([&] { load_model(d.str(), {.n_threads = 1, .kv_cache_type = "f32"}); });
  };
  auto has = [](const std::string& e, const char* s) {
    EXPECT_NE(e.find(s), std::string::npos) << "expected '" << s << "' in '" << e << "'";
  };
  has(err([](const TempDir& d) { fs::remove(d.path() / "config.json"); }), "no config.json");
  has(err([](const TempDir& d) { d.write("config.json", "{"); }), "invalid JSON");
  has(err([](const TempDir& d) {
        d.write("config.json", R"({"architectures": ["GPTJForCausalLM"]})");
      }),
      "unsupported architecture 'GPTJForCausalLM'");
  has(err([](const TempDir& d) {
        json c = json::parse(std::ifstream(d.path() / "config.json"));
        c["hidden_size"] = "64";
        d.write("config.json", c.dump());
      }),
      "\"hidden_size\" is not an integer");
  has(err([](const TempDir& d) {
        json c = json::parse(std::ifstream(d.path() / "config.json"));
        c.erase("num_hidden_layers");
        d.write("config.json", c.dump());
      }),
      "missing \"num_hidden_layers\"");
  has(err([](const TempDir& d) {
        json c = json::parse(std::ifstream(d.path() / "config.json"));
        c["num_key_value_heads"] = 3;
        d.write("config.json", c.dump());
      }),
      "not a multiple of num_key_value_heads");
  has(err([](const TempDir& d) {
        json c = json::parse(std::ifstream(d.path() / "config.json"));
        c["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
        d.write("config.json", c.dump());
      }),
      "unsupported rope_scaling type 'longrope'");
  has(err([](const TempDir& d) {
        json c = json::parse(std::ifstream(d.path() / "config.json"));
        c["hidden_size"] = 48;  // tensors no longer match
        d.write("config.json", c.dump());
      }),
      "expected 48");
  has(err([](const TempDir& d) { fs::remove(d.path() / "model.safetensors"); }),
      "no model.safetensors");
  has(err([](const TempDir& d) { fs::remove(d.path() / "tokenizer.json"); }), "no tokenizer.json");
  has(err([](const TempDir& d) {
        d.write("model.safetensors",
                safetensors_bytes({{"model.layers.0.mlp.experts.weight", {2, 2}, {1, 2, 3, 4}}},
                                  "F32"));
      }),
      "'model.layers.0.mlp.experts.weight' has no counterpart");
  has(err([](const TempDir& d) {
        d.write("model.safetensors",
                safetensors_bytes({{"model.layers.9.mlp.up_proj.weight", {2, 2}, {1, 2, 3, 4}}},
                                  "F32"));
      }),
      "has no counterpart");  // layer index beyond num_hidden_layers
  has(err([](const TempDir& d) {
        std::ifstream f(d.path() / "model.safetensors", std::ios::binary);
        std::string b((std::istreambuf_iterator<char>(f)), {});
        d.write("model.safetensors", b.substr(0, b.size() / 2));
      }),
      "run past the end");
  has(err([](const TempDir& d) {
        // An integer tensor where a weight is expected.
        std::string b =
            safetensors_bytes({{"model.norm.weight", {64}, std::vector<float>(64, 1.0f)}}, "F32");
        const size_t at = b.find("\"F32\"");
        b.replace(at, 5, "\"I32\"");
        d.write("model.safetensors", b);
      }),
      "has dtype I32");
}

}  // namespace
}  // namespace tessera
