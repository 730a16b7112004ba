// Hugging Face directory -> gguf::Source. See hf_source.h.
#include "loader/hf_source.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "loader/hf_config.h"
#include "loader/hf_encoder.h"
#include "loader/hf_tokenizer.h"
#include "loader/memory_source.h"
#include "loader/safetensors.h"
#include "quant/quant.h"

namespace tessera::hf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// --- architecture table ---

struct NamePair {
  std::string_view hf;
  std::string_view gguf;
};

// Llama-family tensor names. Per-layer names follow "model.layers.<N>." / "blk.<N>.".
constexpr NamePair kLlamaGlobals[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
// Per-layer names, in pieces the architectures share; a layer's table is a list of pieces.
using Names = std::span<const NamePair>;
// Pre-norm and the four attention projections: every architecture but Phi-3 (fused QKV).
constexpr NamePair kAttention[] = {
    {"input_layernorm.weight", "attn_norm.weight"},    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},      {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
};
constexpr NamePair kQkvBias[] = {
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
};
// Per-head RMSNorm of q and k (Qwen3, Gemma 3).
constexpr NamePair kQkNorm[] = {
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
};
// The norm between attention and the feed-forward block, where it is the only one.
constexpr NamePair kFfnNorm[] = {
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
};
constexpr NamePair kGatedMlp[] = {
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
// Gemma 3: sandwich norms around attention and the feed-forward block.
constexpr NamePair kGemma3Norms[] = {
    {"post_attention_layernorm.weight", "post_attention_norm.weight"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
};
constexpr NamePair kMixtralRouter[] = {
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
};
constexpr NamePair kQwenRouter[] = {
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
};
// Qwen2-MoE's gated shared expert.
constexpr NamePair kQwenSharedExpert[] = {
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
};
// Phi-3: fused QKV and gate/up projections, named as GGUF's fused tensors.
constexpr NamePair kPhi3[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
// GLM-4: post-attention and post-MLP norms, fused gate/up.
constexpr NamePair kGlm4Rest[] = {
    {"post_self_attn_layernorm.weight", "post_attention_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"post_mlp_layernorm.weight", "post_ffw_norm.weight"},
    {"mlp.gate_up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

constexpr Names kLlamaLayer[] = {kAttention, kQkvBias, kFfnNorm, kGatedMlp};
// Qwen3 and Qwen3-MoE (whose experts are found through expert_prefix).
constexpr Names kQwen3Layer[] = {kAttention, kQkNorm, kFfnNorm, kGatedMlp, kQwenRouter};
constexpr Names kGemma3Layer[] = {kAttention, kQkNorm, kGemma3Norms, kGatedMlp};
constexpr Names kMixtralLayer[] = {kAttention, kFfnNorm, kMixtralRouter};
constexpr Names kQwen2MoeLayer[] = {kAttention, kQkvBias, kFfnNorm, kQwenRouter, kQwenSharedExpert};
constexpr Names kPhi3Layer[] = {kPhi3};
constexpr Names kGlm4Layer[] = {kAttention, kQkvBias, kGlm4Rest};

// Expert tensors, under "<expert_prefix><E>.".
constexpr NamePair kMixtralExpert[] = {
    {"w1.weight", "ffn_gate_exps.weight"},
    {"w2.weight", "ffn_down_exps.weight"},
    {"w3.weight", "ffn_up_exps.weight"},
};
constexpr NamePair kQwenExpert[] = {
    {"gate_proj.weight", "ffn_gate_exps.weight"},
    {"up_proj.weight", "ffn_up_exps.weight"},
    {"down_proj.weight", "ffn_down_exps.weight"},
};
// Buffers some checkpoints save that hold nothing the model needs.
constexpr std::string_view kLlamaIgnored[] = {"self_attn.rotary_emb.inv_freq"};

// Shape of a tensor the architecture needs, row-major as in safetensors ([rows, cols]).
struct Needed {
  std::string name;  // GGUF name
  std::vector<int64_t> shape;
};

struct Dims {
  int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_vocab;
  bool tied;
  int64_t n_expert = 0;     // mixture of experts: experts per layer (0: dense)
  int64_t n_ff_expert = 0;  // an expert's feed-forward width
};

// Shapes of the GGUF tensors a checkpoint of this shape holds, outermost dimension first
// (what dummy weights allocate). The attention block and the globals are common to every
// supported architecture; the feed-forward block is dense or a mixture of experts.
void attention_shapes(const Dims& d, bool qkv_bias, bool qk_norm, const std::string& p,
                      std::vector<Needed>& out) {
  const int64_t q = d.n_head * d.head_dim, kv = d.n_head_kv * d.head_dim;
  out.push_back({p + "attn_norm.weight", {d.n_embd}});
  out.push_back({p + "attn_q.weight", {q, d.n_embd}});
  out.push_back({p + "attn_k.weight", {kv, d.n_embd}});
  out.push_back({p + "attn_v.weight", {kv, d.n_embd}});
  if (qkv_bias) {
    out.push_back({p + "attn_q.bias", {q}});
    out.push_back({p + "attn_k.bias", {kv}});
    out.push_back({p + "attn_v.bias", {kv}});
  }
  if (qk_norm) {
    out.push_back({p + "attn_q_norm.weight", {d.head_dim}});
    out.push_back({p + "attn_k_norm.weight", {d.head_dim}});
  }
  out.push_back({p + "attn_output.weight", {d.n_embd, q}});
  out.push_back({p + "ffn_norm.weight", {d.n_embd}});
}

void global_shapes(const Dims& d, std::vector<Needed>& out) {
  out.push_back({"token_embd.weight", {d.n_vocab, d.n_embd}});
  out.push_back({"output_norm.weight", {d.n_embd}});
  if (!d.tied) out.push_back({"output.weight", {d.n_vocab, d.n_embd}});
}

void dense_ffn_shapes(const Dims& d, const std::string& p, std::vector<Needed>& out) {
  out.push_back({p + "ffn_gate.weight", {d.n_ff, d.n_embd}});
  out.push_back({p + "ffn_up.weight", {d.n_ff, d.n_embd}});
  out.push_back({p + "ffn_down.weight", {d.n_embd, d.n_ff}});
}

// Router [n_expert, n_embd] and the experts stacked as [n_expert, rows, cols].
void moe_ffn_shapes(const Dims& d, const std::string& p, std::vector<Needed>& out) {
  out.push_back({p + "ffn_gate_inp.weight", {d.n_expert, d.n_embd}});
  out.push_back({p + "ffn_gate_exps.weight", {d.n_expert, d.n_ff_expert, d.n_embd}});
  out.push_back({p + "ffn_up_exps.weight", {d.n_expert, d.n_ff_expert, d.n_embd}});
  out.push_back({p + "ffn_down_exps.weight", {d.n_expert, d.n_embd, d.n_ff_expert}});
}

template <bool kQkNorm, bool kMoe>
void decoder_shapes(const Dims& d, bool qkv_bias, std::vector<Needed>& out) {
  global_shapes(d, out);
  for (int64_t l = 0; l < d.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    attention_shapes(d, qkv_bias, kQkNorm, p, out);
    if constexpr (kMoe) {
      moe_ffn_shapes(d, p, out);
    } else {
      dense_ffn_shapes(d, p, out);
    }
  }
}

constexpr auto llama_shapes = decoder_shapes<false, false>;
constexpr auto qwen3_shapes = decoder_shapes<true, false>;
constexpr auto mixtral_shapes = decoder_shapes<false, true>;
constexpr auto qwen3moe_shapes = decoder_shapes<true, true>;

// Architecture-specific config.json fields -> <arch>.* keys ("p" is "<arch>.").
using ExtraConfig = void (*)(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);

// One row per HF architecture (config.json "architectures"[0]).
struct ArchSpec {
  std::string_view hf_arch;
  std::string_view arch;  // general.architecture written for it
  // The GGUF architecture expects Q/K rows permuted for the interleaved RoPE (llama),
  // while HF keeps the rotate-half order: publish kRopeNeoxKey / permute on export.
  bool qk_rotate_half;
  bool qkv_bias;  // the checkpoint has attention biases (for dummy weights)
  std::span<const NamePair> globals;
  std::string_view layer_prefix;
  std::span<const Names> layer;  // pieces, searched in order
  std::span<const std::string_view> ignored;
  void (*shapes)(const Dims&, bool qkv_bias, std::vector<Needed>&);  // null: no dummy weights
  // Norm weights w are stored for a (1 + w) RMSNorm (Gemma); GGUF stores 1 + w.
  bool norm_plus_one = false;
  ExtraConfig extra = nullptr;
  // MoE experts: per-layer "<expert_prefix><E>.<name>" tensors, stacked into GGUF's 3-D
  // [n_expert, rows, cols] tensors named by `expert`.
  std::string_view expert_prefix = {};
  std::span<const NamePair> expert = {};
};

void mistral_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);
void mixtral_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);
void moe_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);
void qwen2moe_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);
void gemma3_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);
void phi3_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src);

// GGUF converters write Mistral checkpoints as arch "llama" (same tensors and RoPE).
constexpr ArchSpec kArchs[] = {
    {"LlamaForCausalLM", "llama", true, false, kLlamaGlobals, "model.layers.", kLlamaLayer,
     kLlamaIgnored, llama_shapes},
    {"MistralForCausalLM", "llama", true, false, kLlamaGlobals, "model.layers.", kLlamaLayer,
     kLlamaIgnored, llama_shapes, false, mistral_config},
    {"Qwen2ForCausalLM", "qwen2", false, true, kLlamaGlobals, "model.layers.", kLlamaLayer,
     kLlamaIgnored, llama_shapes},
    {"Qwen3ForCausalLM", "qwen3", false, false, kLlamaGlobals, "model.layers.", kQwen3Layer,
     kLlamaIgnored, qwen3_shapes},
    {"Gemma3ForCausalLM", "gemma3", false, false, kLlamaGlobals, "model.layers.", kGemma3Layer,
     kLlamaIgnored, nullptr, true, gemma3_config},
    {"MixtralForCausalLM", "llama", true, false, kLlamaGlobals, "model.layers.", kMixtralLayer,
     kLlamaIgnored, mixtral_shapes, false, mixtral_config, "block_sparse_moe.experts.",
     kMixtralExpert},
    {"Qwen2MoeForCausalLM", "qwen2moe", false, true, kLlamaGlobals, "model.layers.", kQwen2MoeLayer,
     kLlamaIgnored, nullptr, false, qwen2moe_config, "mlp.experts.", kQwenExpert},
    {"Qwen3MoeForCausalLM", "qwen3moe", false, false, kLlamaGlobals, "model.layers.", kQwen3Layer,
     kLlamaIgnored, qwen3moe_shapes, false, moe_config, "mlp.experts.", kQwenExpert},
    {"Phi3ForCausalLM", "phi3", false, false, kLlamaGlobals, "model.layers.", kPhi3Layer,
     kLlamaIgnored, nullptr, false, phi3_config},
    {"Glm4ForCausalLM", "glm4", false, true, kLlamaGlobals, "model.layers.", kGlm4Layer,
     kLlamaIgnored, nullptr},
};

const ArchSpec& find_arch(const json& cfg, const std::string& where) {
  if (!cfg.contains("architectures") || !cfg["architectures"].is_array() ||
      cfg["architectures"].empty() || !cfg["architectures"][0].is_string())
    throw Error(where + ": no \"architectures\" list");
  const std::string name = cfg["architectures"][0].get<std::string>();
  for (const ArchSpec& a : kArchs)
    if (a.hf_arch == name) return a;
  std::string known;
  for (const std::string& a : supported_hf_architectures())
    known += (known.empty() ? "" : ", ") + a;
  throw Error(where + ": unsupported architecture '" + name + "' (supported: " + known + ")");
}

// GGUF name of HF tensor `name`; "" when the architecture ignores it; nullopt when unknown.
std::optional<std::string> gguf_name(const ArchSpec& a, const std::string& name, int64_t n_layer,
                                     int64_t* expert = nullptr) {
  for (const NamePair& p : a.globals)
    if (p.hf == name) return std::string(p.gguf);
  if (!name.starts_with(a.layer_prefix)) return std::nullopt;
  const std::string rest = name.substr(a.layer_prefix.size());
  const size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string::npos) return std::nullopt;
  int64_t l = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (rest[i] < '0' || rest[i] > '9' || l > n_layer) return std::nullopt;
    l = l * 10 + (rest[i] - '0');
  }
  if (l >= n_layer) return std::nullopt;
  const std::string suffix = rest.substr(dot + 1);
  for (std::string_view ig : a.ignored)
    if (suffix == ig) return std::string();
  for (Names piece : a.layer)
    for (const NamePair& p : piece)
      if (p.hf == suffix) return "blk." + std::to_string(l) + "." + std::string(p.gguf);
  if (expert && !a.expert_prefix.empty() && suffix.starts_with(a.expert_prefix)) {
    const std::string e = suffix.substr(a.expert_prefix.size());
    const size_t edot = e.find('.');
    if (edot == 0 || edot == std::string::npos || edot > 6) return std::nullopt;
    int64_t n = 0;
    for (size_t i = 0; i < edot; ++i) {
      if (e[i] < '0' || e[i] > '9') return std::nullopt;
      n = n * 10 + (e[i] - '0');
    }
    for (const NamePair& p : a.expert)
      if (p.hf == e.substr(edot + 1)) {
        *expert = n;
        return "blk." + std::to_string(l) + "." + std::string(p.gguf);
      }
  }
  return std::nullopt;
}

// --- config.json ---

json read_json(const fs::path& p) {
  const std::string text = read_file(p.string());
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

void require_positive(double v, const std::string& what, const std::string& where) {
  if (!(v > 0.0) || !std::isfinite(v)) throw Error(where + ": " + what + " must be > 0");
}

void moe_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  const int64_t n_expert =
      r.has("num_local_experts") ? r.get_int("num_local_experts") : r.get_int("num_experts");
  const int64_t n_used = r.get_int("num_experts_per_tok");
  if (n_used > n_expert) throw Error(r.where + ": num_experts_per_tok > the number of experts");
  src.set_uint(p + "expert_count", n_expert);
  src.set_uint(p + "expert_used_count", n_used);
  if (r.has("moe_intermediate_size"))
    src.set_uint(p + "expert_feed_forward_length", r.get_int("moe_intermediate_size"));
  if (r.has("norm_topk_prob")) src.set_bool(p + "expert_weights_norm", r.cfg["norm_topk_prob"]);
  // Dense layers between MoE layers are not supported.
  if (r.get_int("decoder_sparse_step", 1) != 1)
    throw Error(r.where + ": decoder_sparse_step != 1 (dense layers) is not supported");
  if (r.has("mlp_only_layers") && !r.cfg["mlp_only_layers"].empty())
    throw Error(r.where + ": mlp_only_layers (dense layers) is not supported");
}

// Mistral 7B v0.1's sliding window (every layer); later versions set it to null.
void mistral_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  if (r.has("sliding_window"))
    src.set_uint(p + "attention.sliding_window", r.get_int("sliding_window"));
}

void mixtral_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  if (r.has("sliding_window"))
    throw Error(r.where + ": sliding_window together with experts is not supported");
  moe_config(r, p, src);
}

void qwen2moe_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  moe_config(r, p, src);
  src.set_uint(p + "expert_shared_feed_forward_length",
               r.get_int("shared_expert_intermediate_size"));
}

void gemma3_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  if (r.has("attn_logit_softcapping"))
    throw Error(r.where + ": attn_logit_softcapping is not supported");
  if (r.has("final_logit_softcapping"))
    src.set_float(p + "final_logit_softcapping",
                  r.get_float(r.cfg, "final_logit_softcapping", std::nullopt));
  // The model scales attention by 1/sqrt(head_dim) (by 1/sqrt(n_embd / n_head) for the
  // 62-layer 27B); query_pre_attn_scalar must say the same.
  const int64_t n_embd = r.get_int("hidden_size"), n_head = r.get_int("num_attention_heads");
  const int64_t head_dim = r.get_int("head_dim", n_embd / n_head);
  const int64_t want = r.get_int("num_hidden_layers") == 62 ? n_embd / n_head : head_dim;
  if (r.get_int("query_pre_attn_scalar", want) != want)
    throw Error(r.where + ": query_pre_attn_scalar must be " + std::to_string(want));
  if (!r.has("sliding_window")) return;
  src.set_uint(p + "attention.sliding_window", r.get_int("sliding_window"));
  const int64_t n_layer = r.get_int("num_hidden_layers");
  std::vector<int32_t> swa;
  if (r.has("layer_types")) {
    for (const json& t : r.cfg["layer_types"]) swa.push_back(t == "sliding_attention" ? 1 : 0);
  } else {
    const int64_t n = r.get_int("sliding_window_pattern", 6);
    for (int64_t l = 0; l < n_layer; ++l) swa.push_back(l % n < n - 1 ? 1 : 0);
  }
  if (static_cast<int64_t>(swa.size()) != n_layer)
    throw Error(r.where + ": layer_types must have one entry per layer");
  src.set_int32_array(p + "attention.sliding_window_pattern", swa);
  if (r.has("rope_local_base_freq"))
    src.set_float(p + "rope.freq_base_swa", r.get_float(r.cfg, "rope_local_base_freq", 1e4));
}

void phi3_config(const ConfigReader& r, const std::string& p, gguf::MemorySource& src) {
  if (r.has("original_max_position_embeddings"))
    src.set_uint(p + "rope.scaling.original_context_length",
                 r.get_int("original_max_position_embeddings"));
}

}  // namespace

std::vector<float> llama3_rope_factors(int n_rot, double freq_base, double factor,
                                       double low_freq_factor, double high_freq_factor,
                                       double original_context) {
  // Wavelengths shorter than original_context / high_freq_factor keep their frequency,
  // those longer than original_context / low_freq_factor are slowed by `factor`, and the
  // band between blends the two smoothly.
  const double low_wavelen = original_context / low_freq_factor;
  const double high_wavelen = original_context / high_freq_factor;
  std::vector<float> out;
  for (int i = 0; i < n_rot; i += 2) {
    const double freq = std::pow(freq_base, -static_cast<double>(i) / n_rot);
    const double wavelen = 2.0 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = factor;
    } else {
      const double smooth =
          (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

namespace {

using NamedVector = std::pair<std::string, std::vector<float>>;

// Writes <arch>.* keys; returns the dimensions the tensors must have. `rope_tensors`
// receives the 1-D RoPE factor tensors the scaling needs (rope_freqs, rope_factors_*).
Dims read_config(const json& cfg, const ArchSpec& spec, const std::string& where,
                 gguf::MemorySource& src, std::vector<NamedVector>* rope_tensors) {
  ConfigReader r{cfg, where};
  const std::string p = std::string(spec.arch) + ".";
  Dims d{};
  d.n_embd = r.get_int("hidden_size");
  d.n_layer = r.get_int("num_hidden_layers");
  d.n_ff = r.get_int("intermediate_size");
  d.n_head = r.get_int("num_attention_heads");
  d.n_head_kv = r.get_int("num_key_value_heads", d.n_head);
  d.n_vocab = r.get_int("vocab_size");
  if (d.n_head_kv > d.n_head || d.n_head % d.n_head_kv != 0)
    throw Error(where + ": num_attention_heads (" + std::to_string(d.n_head) +
                ") is not a multiple of num_key_value_heads (" + std::to_string(d.n_head_kv) + ")");
  if (!r.has("head_dim") && d.n_embd % d.n_head != 0)
    throw Error(where +
                ": hidden_size is not a multiple of num_attention_heads and no head_dim is given");
  d.head_dim = r.get_int("head_dim", d.n_embd / d.n_head);
  if (d.head_dim % 2 != 0) throw Error(where + ": head_dim must be even");
  d.tied = cfg.value("tie_word_embeddings", false);
  if (r.has("num_local_experts") || r.has("num_experts")) {
    d.n_expert =
        r.has("num_local_experts") ? r.get_int("num_local_experts") : r.get_int("num_experts");
    d.n_ff_expert = r.get_int("moe_intermediate_size", d.n_ff);
  }

  src.set_string("general.architecture", std::string(spec.arch));
  src.set_uint(p + "vocab_size", d.n_vocab);
  src.set_uint(p + "context_length", r.get_int("max_position_embeddings", 2048));
  src.set_uint(p + "embedding_length", d.n_embd);
  src.set_uint(p + "block_count", d.n_layer);
  src.set_uint(p + "feed_forward_length", d.n_ff);
  src.set_uint(p + "attention.head_count", d.n_head);
  src.set_uint(p + "attention.head_count_kv", d.n_head_kv);
  if (r.has("head_dim")) {
    src.set_uint(p + "attention.key_length", d.head_dim);
    src.set_uint(p + "attention.value_length", d.head_dim);
  }
  const double eps = r.get_float(cfg, "rms_norm_eps", 1e-6);
  require_positive(eps, "rms_norm_eps", where);
  src.set_float(p + "attention.layer_norm_rms_epsilon", eps);

  // RoPE: rope_theta at the top level (or inside rope_parameters in newer files), and
  // an optional rope_scaling / rope_parameters object.
  json scaling = r.has("rope_scaling")      ? cfg["rope_scaling"]
                 : r.has("rope_parameters") ? cfg["rope_parameters"]
                                            : json();
  if (!scaling.is_null() && !scaling.is_object())
    throw Error(where + ": rope_scaling is not an object");
  // Per layer type (Gemma 3): full attention's parameters are the main ones, sliding
  // attention's theta becomes rope.freq_base_swa.
  if (scaling.is_object() && scaling.contains("full_attention")) {
    if (scaling.contains("sliding_attention") && scaling["sliding_attention"].is_object() &&
        scaling["sliding_attention"].contains("rope_theta"))
      src.set_float(p + "rope.freq_base_swa",
                    r.get_float(scaling["sliding_attention"], "rope_theta", std::nullopt));
    json full = scaling["full_attention"];
    if (!full.is_object()) throw Error(where + ": rope_parameters.full_attention is not an object");
    scaling = full;
  }
  // Partial rotary embedding (GLM-4): only the first head_dim * factor dimensions rotate.
  const json& prf_obj = r.has("partial_rotary_factor")                                     ? cfg
                        : scaling.is_object() && scaling.contains("partial_rotary_factor") ? scaling
                                                                                           : cfg;
  // GLM-4 rotates half of each head unless told otherwise (its config default).
  const double prf = r.get_float(prf_obj, "partial_rotary_factor", spec.arch == "glm4" ? 0.5 : 1.0);
  if (scaling.is_object() && scaling.contains("mrope_section"))
    throw Error(where + ": multimodal RoPE (mrope_section) is not supported");
  if (!(prf > 0.0 && prf <= 1.0)) throw Error(where + ": partial_rotary_factor must be in (0, 1]");
  const int64_t n_rot = static_cast<int64_t>(std::llround(d.head_dim * prf));
  if (n_rot % 2 != 0) throw Error(where + ": rotary dimensions must be even");
  src.set_uint(p + "rope.dimension_count", n_rot);
  double theta = 10000.0;
  if (r.has("rope_theta"))
    theta = r.get_float(cfg, "rope_theta", 10000.0);
  else if (scaling.is_object() && scaling.contains("rope_theta"))
    theta = r.get_float(scaling, "rope_theta", 10000.0);
  if (!(theta > 1.0)) throw Error(where + ": rope_theta must be > 1");
  src.set_float(p + "rope.freq_base", theta);
  if (scaling.is_object()) {
    std::string type = scaling.value("rope_type", scaling.value("type", std::string("default")));
    if (type == "default" || type.empty()) {
      // no scaling
    } else if (type == "linear" || type == "yarn") {
      const double factor = r.get_float(scaling, "factor", std::nullopt);
      require_positive(factor, "rope_scaling.factor", where);
      src.set_string(p + "rope.scaling.type", type);
      src.set_float(p + "rope.scaling.factor", factor);
      if (type == "yarn") {
        if (scaling.contains("original_max_position_embeddings"))
          src.set_uint(p + "rope.scaling.original_context_length",
                       static_cast<uint64_t>(
                           r.get_float(scaling, "original_max_position_embeddings", std::nullopt)));
        if (scaling.contains("beta_fast"))
          src.set_float(p + "rope.scaling.yarn_beta_fast", r.get_float(scaling, "beta_fast", 32.0));
        if (scaling.contains("beta_slow"))
          src.set_float(p + "rope.scaling.yarn_beta_slow", r.get_float(scaling, "beta_slow", 1.0));
      }
    } else if (type == "longrope" && spec.arch == "phi3") {
      // Phi-3 LongRoPE: per-dimension divisors for short and long contexts and a cos/sin
      // magnitude sqrt(1 + ln(s) / ln(original context)), s = context / original context.
      const double orig = scaling.contains("original_max_position_embeddings")
                              ? r.get_float(scaling, "original_max_position_embeddings", 0.0)
                              : static_cast<double>(r.get_int("original_max_position_embeddings"));
      require_positive(orig, "original_max_position_embeddings", where);
      const double ctx = static_cast<double>(r.get_int("max_position_embeddings", 2048));
      const double s = ctx / orig;
      const double attn_factor = scaling.contains("attention_factor")
                                     ? r.get_float(scaling, "attention_factor", 1.0)
                                 : s <= 1.0 ? 1.0
                                            : std::sqrt(1.0 + std::log(s) / std::log(orig));
      src.set_float(p + "rope.scaling.attn_factor", attn_factor);
      src.set_uint(p + "rope.scaling.original_context_length", static_cast<uint64_t>(orig));
      for (const char* which : {"short", "long"}) {
        const std::string key = std::string(which) + "_factor";
        if (!scaling.contains(key) || !scaling[key].is_array() ||
            static_cast<int64_t>(scaling[key].size()) != n_rot / 2)
          throw Error(where + ": rope_scaling." + key + " must list " + std::to_string(n_rot / 2) +
                      " numbers");
        std::vector<float> v;
        for (const json& x : scaling[key]) {
          if (!x.is_number()) throw Error(where + ": rope_scaling." + key + " is not numeric");
          v.push_back(x.get<float>());
        }
        rope_tensors->emplace_back("rope_factors_" + std::string(which) + ".weight", v);
      }
    } else if (type == "llama3") {
      const double factor = r.get_float(scaling, "factor", std::nullopt);
      const double lo = r.get_float(scaling, "low_freq_factor", 1.0);
      const double hi = r.get_float(scaling, "high_freq_factor", 4.0);
      const double orig = r.get_float(scaling, "original_max_position_embeddings", 8192.0);
      for (double v : {factor, lo, hi, orig})
        require_positive(v, "rope_scaling (llama3) values", where);
      if (!(hi > lo))
        throw Error(where + ": rope_scaling needs high_freq_factor > low_freq_factor");
      rope_tensors->emplace_back(
          "rope_freqs.weight",
          llama3_rope_factors(static_cast<int>(d.head_dim), theta, factor, lo, hi, orig));
    } else {
      throw Error(where + ": unsupported rope_scaling type '" + type +
                  "' (supported: linear, yarn, llama3; longrope for Phi-3)");
    }
  }
  if (spec.qk_rotate_half) src.set_bool(kRopeNeoxKey, true);
  if (spec.extra) spec.extra(r, p, src);
  return d;
}

// --- tensors ---

DType dtype_or_throw(const safetensors::TensorView& t) {
  return t.require_float();
}

void add_checkpoint_tensors(const std::string& dir, const ArchSpec& spec, const Dims& d,
                            gguf::MemorySource& src) {
  std::shared_ptr<safetensors::Checkpoint> ck = safetensors::Checkpoint::open(dir);
  src.keep(ck);
  // Expert matrices by GGUF name, indexed by expert.
  std::map<std::string, std::vector<const safetensors::TensorView*>> experts;
  for (const safetensors::TensorView* t : ck->tensors()) {
    int64_t expert = -1;
    const std::optional<std::string> name = gguf_name(spec, t->name, d.n_layer, &expert);
    if (!name)
      throw Error(t->file + ": tensor '" + t->name + "' has no counterpart in architecture '" +
                  std::string(spec.arch) + "' (an unsupported variant of " +
                  std::string(spec.hf_arch) + "?)");
    if (name->empty()) continue;
    dtype_or_throw(*t);  // integer / F64 tensors are refused by name
    if (expert >= 0) {
      if (t->shape.size() != 2)
        throw Error(t->file + ": expert tensor '" + t->name + "' is not a matrix");
      std::vector<const safetensors::TensorView*>& v = experts[*name];
      if (static_cast<int64_t>(v.size()) <= expert) v.resize(expert + 1, nullptr);
      v[expert] = t;
      continue;
    }
    gguf::TensorInfo ti = tensor_from_checkpoint(*t, *name, src);
    if (ti.n_dims == 1 && spec.norm_plus_one && ti.name.find("norm") != std::string::npos) {
      float* w = reinterpret_cast<float*>(const_cast<uint8_t*>(ti.data));  // src's own copy
      for (int64_t i = 0; i < ti.ne[0]; ++i) w[i] += 1.0f;
    }
    src.add_tensor(std::move(ti));
  }
  // Experts stacked into one [n_expert, rows, cols] tensor (a copy).
  for (const auto& [name, v] : experts) {
    const safetensors::TensorView* first = v.empty() ? nullptr : v[0];
    for (size_t e = 0; e < v.size(); ++e) {
      if (!v[e])
        throw Error(dir + ": expert " + std::to_string(e) + " of '" + name + "' is missing");
      if (v[e]->shape != first->shape || v[e]->require_float() != first->require_float())
        throw Error(v[e]->file + ": '" + v[e]->name + "' differs in shape or type from expert 0");
    }
    gguf::TensorInfo ti;
    ti.name = name;
    ti.n_dims = 3;
    ti.ne[0] = first->shape[1];
    ti.ne[1] = first->shape[0];
    ti.ne[2] = static_cast<int64_t>(v.size());
    ti.type = first->require_float();
    ti.n_bytes = first->n_bytes * v.size();
    uint8_t* data = src.alloc(ti.n_bytes);
    for (size_t e = 0; e < v.size(); ++e)
      std::memcpy(data + e * first->n_bytes, v[e]->data, first->n_bytes);
    ti.data = data;
    src.add_tensor(std::move(ti));
  }
}

// splitmix64: a tiny, well-mixed generator; one stream per (seed, tensor, chunk) so the
// values do not depend on the number of threads.
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void add_dummy_tensors(const ArchSpec& spec, const Dims& d, const LoadOptions& opts,
                       gguf::MemorySource& src) {
  std::vector<Needed> needed;
  spec.shapes(d, spec.qkv_bias, needed);
  const DTypeInfo& qi = dtype_info(opts.dummy_type);
  for (const Needed& n : needed) {
    gguf::TensorInfo ti;
    ti.name = n.name;
    ti.n_dims = static_cast<int>(n.shape.size());
    for (int i = 0; i < ti.n_dims; ++i) ti.ne[i] = n.shape[ti.n_dims - 1 - i];
    const int64_t cols = ti.ne[0], rows = ti.n_elements() / cols;
    const bool is_vec = ti.n_dims == 1;
    const bool is_norm = n.name.find("norm") != std::string::npos;
    ti.type = is_vec ? DType::F32 : (cols % qi.block_size == 0 ? opts.dummy_type : DType::F16);
    ti.n_bytes = row_size(ti.type, cols) * rows;
    uint8_t* data = src.alloc(ti.n_bytes);
    ti.data = data;
    // Weights ~ U(-a, a) with a = sqrt(3) * 0.02 (std 0.02, the usual initialiser scale);
    // norm weights 1, biases small.
    const uint64_t tseed = opts.seed ^ hash_name(n.name);
    constexpr int64_t kChunk = 64;  // rows per random stream
    const int64_t n_chunks = (rows + kChunk - 1) / kChunk;
    auto fill = [&](int64_t c0, int64_t c1) {
      std::vector<float> row(cols);
      for (int64_t c = c0; c < c1; ++c) {
        uint64_t s = tseed + 0x632BE59BD9B4E019ull * static_cast<uint64_t>(c + 1);
        for (int64_t r = c * kChunk; r < std::min(rows, (c + 1) * kChunk); ++r) {
          for (int64_t j = 0; j < cols; ++j) {
            const double u = (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
            row[j] = is_norm ? 1.0f : static_cast<float>((2.0 * u - 1.0) * 0.0346410161514);
          }
          quant::quantize_row(ti.type, row.data(), data + r * row_size(ti.type, cols), cols);
        }
      }
    };
    const int64_t n_threads =
        std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(1, n_chunks));
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < n_threads; ++t)
      pool.emplace_back(fill, n_chunks * t / n_threads, n_chunks * (t + 1) / n_threads);
    fill(0, n_chunks / n_threads);
    for (std::thread& th : pool) th.join();
    src.add_tensor(std::move(ti));
  }
}

}  // namespace

gguf::TensorInfo tensor_from_checkpoint(const safetensors::TensorView& t, const std::string& name,
                                        gguf::MemorySource& src) {
  const DType type = t.require_float();
  if (t.shape.empty() || t.shape.size() > 4)
    throw Error(t.file + ": tensor '" + t.name + "' has " + std::to_string(t.shape.size()) +
                " dimensions (1 to 4 supported)");
  gguf::TensorInfo ti;
  ti.name = name;
  ti.n_dims = static_cast<int>(t.shape.size());
  for (int i = 0; i < ti.n_dims; ++i) ti.ne[i] = t.shape[ti.n_dims - 1 - i];
  if (ti.n_dims == 1) {
    const int64_t n = ti.ne[0];
    float* out = reinterpret_cast<float*>(src.alloc(sizeof(float) * n));
    if (type == DType::F32) {
      std::memcpy(out, t.data, sizeof(float) * n);
    } else {
      std::vector<uint16_t> tmp(n);
      std::memcpy(tmp.data(), t.data, 2 * n);
      quant::dequantize_row(type, tmp.data(), out, n);
    }
    ti.type = DType::F32;
    ti.data = reinterpret_cast<const uint8_t*>(out);
    ti.n_bytes = sizeof(float) * n;
    return ti;
  }
  ti.type = type;
  ti.data = t.data;
  ti.n_bytes = t.n_bytes;
  const size_t elem = type == DType::F32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(t.data) % elem != 0) {  // keep element access aligned
    uint8_t* copy = src.alloc(t.n_bytes);
    std::memcpy(copy, t.data, t.n_bytes);
    ti.data = copy;
  }
  return ti;
}

bool is_hf_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return true;
  return fs::path(path).filename() == "config.json";
}

std::vector<std::string> supported_hf_architectures() {
  std::vector<std::string> v;
  for (const ArchSpec& a : kArchs) v.emplace_back(a.hf_arch);
  for (const std::string& e : encoder_architectures()) v.push_back(e);
  return v;
}

std::vector<HfArchitecture> hf_architecture_table() {
  std::vector<HfArchitecture> v;
  for (const ArchSpec& a : kArchs)
    v.push_back({std::string(a.hf_arch), std::string(a.arch), a.shapes != nullptr});
  for (const std::string& e : encoder_architectures()) v.push_back({e, "bert", false});
  return v;
}

std::unique_ptr<gguf::Source> open_hf_directory(const std::string& path, const LoadOptions& opts) {
  std::error_code ec;
  fs::path dir(path), config_path;
  if (fs::is_directory(dir, ec)) {
    config_path = dir / "config.json";
  } else {
    if (!opts.dummy_weights)
      throw Error(path + ": a config.json file alone can only be used with dummy weights");
    config_path = dir;
    dir = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  }
  if (!fs::exists(config_path, ec)) throw Error(path + ": no config.json");
  const json cfg = read_json(config_path);
  const std::string where = config_path.string();
  if (!cfg.is_object()) throw Error(where + ": not a JSON object");

  auto src = std::make_unique<gguf::MemorySource>(
      opts.dummy_weights ? "Hugging Face config (dummy weights)" : "Hugging Face safetensors");
  try {
    if (cfg.contains("architectures") && cfg["architectures"].is_array() &&
        !cfg["architectures"].empty() && cfg["architectures"][0].is_string() &&
        is_encoder_architecture(cfg["architectures"][0].get<std::string>())) {
      if (opts.dummy_weights)
        throw Error(where + ": dummy weights are not available for encoder architectures");
      std::string name = fs::weakly_canonical(dir, ec).filename().string();
      src->set_string("general.name", name.empty() ? std::string("bert") : name);
      add_encoder_model(cfg, dir.string(), where, *src);
      add_sentence_transformers_metadata(dir.string(), "bert", *src);
      return src;
    }
    const ArchSpec& spec = find_arch(cfg, where);
    std::vector<NamedVector> rope_tensors;
    const Dims d = read_config(cfg, spec, where, *src, &rope_tensors);
    std::string name = fs::weakly_canonical(dir, ec).filename().string();
    src->set_string("general.name", name.empty() ? std::string(spec.hf_arch) : name);

    const bool has_tok = fs::exists(dir / "tokenizer.json") ||
                         (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"));
    VocabData vocab = has_tok || !opts.dummy_weights ? read_tokenizer_dir(dir.string(), &cfg)
                                                     : synthetic_byte_vocab(d.n_vocab);
    write_vocab_metadata(vocab, *src);
    if (has_tok) {
      const std::string tmpl = read_chat_template(dir.string());
      if (!tmpl.empty()) src->set_string("tokenizer.chat_template", tmpl);
    }

    if (opts.dummy_weights) {
      if (!spec.shapes)
        throw Error(where + ": dummy weights are not available for " + std::string(spec.hf_arch));
      add_dummy_tensors(spec, d, opts, *src);
    } else {
      add_checkpoint_tensors(dir.string(), spec, d, *src);
    }
    add_sentence_transformers_metadata(dir.string(), std::string(spec.arch), *src);
    for (const auto& [rope_name, rope_factors] : rope_tensors) {
      gguf::TensorInfo ti;
      ti.name = rope_name;
      ti.n_dims = 1;
      ti.ne[0] = static_cast<int64_t>(rope_factors.size());
      ti.type = DType::F32;
      ti.n_bytes = sizeof(float) * rope_factors.size();
      uint8_t* buf = src->alloc(ti.n_bytes);
      std::memcpy(buf, rope_factors.data(), ti.n_bytes);
      ti.data = buf;
      src->add_tensor(std::move(ti));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": unexpected structure: " + e.what());
  }
  return src;
}

}  // namespace tessera::hf
