// Architecture registry: general.architecture -> the builder of its family.
#include "models/model.h"

#include <functional>
#include <map>

#include "core/error.h"
#include "dist/communicator.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "models/encoder.h"
#include "models/families.h"
#include "models/weight_quant.h"

namespace tessera {

namespace {

using Builder = std::function<std::unique_ptr<Model>(std::unique_ptr<gguf::Source>,
                                                     const std::string&, const ModelOptions&)>;

// "llama" / "mistral" files also carry Mixtral (experts) and Mistral's sliding window.
std::unique_ptr<Model> make_llama_variant(std::unique_ptr<gguf::Source> file,
                                          const std::string& arch, const ModelOptions& opts) {
  if (file->get_int(arch + ".expert_count").value_or(0) > 0)
    return make_moe_model(std::move(file), arch, opts);
  if (file->get_int(arch + ".attention.sliding_window").value_or(0) > 0)
    return make_mistral_model(std::move(file), arch, opts);
  return make_llama_model(std::move(file), arch, opts);
}

const std::map<std::string, Builder>& registry() {
  static const std::map<std::string, Builder> r = {
      {"baichuan", make_baichuan_model}, {"bert", make_bert_model},
      {"chatglm", make_chatglm_model},   {"gemma3", make_gemma3_model},
      {"glm4", make_chatglm_model},      {"internlm2", make_internlm2_model},
      {"llama", make_llama_variant},     {"mistral", make_llama_variant},
      {"phi3", make_phi3_model},         {"qwen2", make_llama_model},
      {"qwen2moe", make_moe_model},      {"qwen3", make_qwen3_model},
      {"qwen3moe", make_moe_model},
  };
  return r;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> v;
  for (const auto& [name, _] : registry()) v.push_back(name);
  return v;
}

std::vector<ArchitectureInfo> architecture_table() {
  // One line per registry entry; the Hugging Face side comes from the HF loader's table.
  static const std::map<std::string, std::pair<const char*, const char*>> kText = {
      {"baichuan", {"Baichuan 1/2", "RoPE (7B) or ALiBi (13B), fused QKV split at conversion"}},
      {"bert",
       {"BERT, RoBERTa (encoders: embeddings, cross-encoder scores)",
        "bidirectional attention over packed sequences, post-LayerNorm, GELU, position and "
        "token-type embeddings, classification head"}},
      {"chatglm", {"ChatGLM2/3", "partial RoPE, fused QKV with biases, fused gate/up"}},
      {"gemma3",
       {"Gemma 3 (text)",
        "sliding-window/global layers, QK-norm, GeGLU, sandwich norms, "
        "embedding scale, final logit soft-cap"}},
      {"glm4", {"GLM-4", "partial RoPE, QKV biases, post-attention and post-MLP norms"}},
      {"internlm2", {"InternLM2", "Llama decoder (wqkv split at conversion)"}},
      {"llama",
       {"Llama 2/3, SmolLM2, Mistral, Mixtral",
        "GQA, RoPE scaling (linear, YaRN, llama3), sliding window, mixture of experts"}},
      {"mistral", {"Mistral, Mixtral", "as llama"}},
      {"phi3", {"Phi-3", "fused QKV and gate/up, LongRoPE (short factors)"}},
      {"qwen2", {"Qwen2, Qwen2.5", "QKV biases, NeoX RoPE"}},
      {"qwen2moe", {"Qwen1.5-MoE, Qwen2-MoE", "top-k experts + gated shared expert"}},
      {"qwen3", {"Qwen3", "QK-norm, NeoX RoPE"}},
      {"qwen3moe", {"Qwen3-MoE", "QK-norm, top-k experts (normalized)"}},
  };
  std::vector<ArchitectureInfo> out;
  const std::vector<hf::HfArchitecture> hf_archs = hf::hf_architecture_table();
  for (const std::string& name : supported_architectures()) {
    ArchitectureInfo a;
    a.name = name;
    if (auto it = kText.find(name); it != kText.end()) {
      a.families = it->second.first;
      a.features = it->second.second;
    }
    for (const hf::HfArchitecture& h : hf_archs) {
      if (h.arch != name) continue;
      a.hf_archs.push_back(h.hf_arch);
      if (h.dummy) a.dummy_archs.push_back(h.hf_arch);
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& opts) {
  std::unique_ptr<gguf::Source> f;
  const std::optional<DType> quant = parse_weight_type(opts.quantization);
  DType kv_type;
  if (opts.kv_cache_type == "f16")
    kv_type = DType::F16;
  else if (opts.kv_cache_type == "f32")
    kv_type = DType::F32;
  else
    throw Error("unknown KV cache type '" + opts.kv_cache_type + "' (f16, f32)");
  if (opts.load_format == "dummy") {
    hf::LoadOptions lo;
    lo.dummy_weights = true;
    lo.seed = opts.dummy_seed;
    lo.dummy_type = quant.value_or(DType::F16);
    f = hf::open_hf_directory(path, lo);
  } else if (opts.load_format == "hf" || (opts.load_format == "auto" && hf::is_hf_path(path))) {
    f = hf::open_hf_directory(path);
  } else if (opts.load_format == "gguf" || opts.load_format == "auto") {
    // A tensor- or pipeline-parallel rank copies out its shards or reads its layers as it
    // loads them: the file stays mapped (read only where used), never read whole into memory.
    const bool sharded = opts.comm != nullptr && opts.comm->size() > 1;
    f = gguf::File::open(path, /*copy_to_huge_pages=*/!sharded);
  } else {
    throw Error("unknown load format '" + opts.load_format + "' (auto, gguf, hf, dummy)");
  }
  const std::string arch = f->get_string("general.architecture").value_or("");
  if (arch.empty()) throw Error(path + ": missing general.architecture");
  auto it = registry().find(arch);
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : supported_architectures()) known += (known.empty() ? "" : ", ") + n;
    throw Error(path + ": unsupported architecture '" + arch + "' (supported: " + known + ")");
  }
  try {
    std::unique_ptr<Model> m = it->second(std::move(f), arch, opts);
    m->set_kv_cache_type(kv_type);
    return m;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::unique_ptr<KVCache> Model::make_kv_cache(int n_blocks, int block_size) {
  return std::make_unique<KVCache>(*backend_, n_layer_local(), kv_dim_local(), n_blocks, block_size,
                                   kv_type_);
}

}  // namespace tessera

namespace tessera {
Model::~Model() = default;

void Model::forward_hidden(const ForwardBatch&, KVCache&, float*) {
  throw Error("'" + config_.arch + "' models do not expose their hidden states");
}
}  // namespace tessera
