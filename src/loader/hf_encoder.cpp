// Hugging Face encoder directories -> GGUF "bert" keys and tensors. See hf_encoder.h.
#include "loader/hf_encoder.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/file.h"
#include "loader/hf_config.h"
#include "loader/hf_source.h"
#include "loader/hf_tokenizer.h"
#include "loader/safetensors.h"

namespace tessera::hf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// llama.cpp's enum llama_pooling_type, as {arch}.pooling_type stores it.
enum PoolingKey : uint32_t { kPoolMean = 1, kPoolCls = 2, kPoolLast = 3, kPoolRank = 4 };

struct EncoderArch {
  std::string_view hf_arch;
  bool roberta;     // positions offset by pad_token_id + 1; RoBERTa's classification head
  bool classifier;  // has a classification head (a cross-encoder)
};

constexpr EncoderArch kEncoders[] = {
    {"BertModel", false, false},
    {"BertForMaskedLM", false, false},
    {"BertForSequenceClassification", false, true},
    {"RobertaModel", true, false},
    {"RobertaForSequenceClassification", true, true},
};

const EncoderArch* find_encoder(const std::string& name) {
  for (const EncoderArch& a : kEncoders)
    if (a.hf_arch == name) return &a;
  return nullptr;
}

json parse_json_file(const fs::path& p) {
  try {
    return json::parse(read_file(p.string()));
  } catch (const json::exception& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

// Positive integer field of config.json (`def` when absent and given).
int64_t get_int(const json& cfg, const char* key, const std::string& where,
                std::optional<int64_t> def = std::nullopt) {
  return ConfigReader{cfg, where}.get_int(key, def);
}

// GGUF name of an encoder tensor; "" for tensors the model does not use; nullopt when
// unknown. `name` has its "bert." / "roberta." prefix removed.
std::optional<std::string> encoder_tensor_name(const EncoderArch& a, const std::string& name,
                                               int64_t n_layer) {
  static const std::map<std::string, std::string> kGlobals = {
      {"embeddings.word_embeddings.weight", "token_embd.weight"},
      {"embeddings.position_embeddings.weight", "position_embd.weight"},
      {"embeddings.token_type_embeddings.weight", "token_types.weight"},
      {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
      {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
  };
  static const std::map<std::string, std::string> kLayer = {
      {"attention.self.query.weight", "attn_q.weight"},
      {"attention.self.query.bias", "attn_q.bias"},
      {"attention.self.key.weight", "attn_k.weight"},
      {"attention.self.key.bias", "attn_k.bias"},
      {"attention.self.value.weight", "attn_v.weight"},
      {"attention.self.value.bias", "attn_v.bias"},
      {"attention.output.dense.weight", "attn_output.weight"},
      {"attention.output.dense.bias", "attn_output.bias"},
      {"attention.output.LayerNorm.weight", "attn_output_norm.weight"},
      {"attention.output.LayerNorm.bias", "attn_output_norm.bias"},
      {"intermediate.dense.weight", "ffn_up.weight"},
      {"intermediate.dense.bias", "ffn_up.bias"},
      {"output.dense.weight", "ffn_down.weight"},
      {"output.dense.bias", "ffn_down.bias"},
      {"output.LayerNorm.weight", "layer_output_norm.weight"},
      {"output.LayerNorm.bias", "layer_output_norm.bias"},
  };
  if (auto it = kGlobals.find(name); it != kGlobals.end()) return it->second;
  if (name == "embeddings.position_ids") return std::string();
  // Pre-training heads (masked LM, next sentence) are not part of an encoder's output.
  if (name.starts_with("cls.predictions.") || name.starts_with("cls.seq_relationship.") ||
      name.starts_with("lm_head."))
    return std::string();
  if (name.starts_with("pooler.")) {
    if (!a.classifier) return std::string();  // embeddings are pooled from the hidden states
    if (name == "pooler.dense.weight") return std::string("cls.weight");
    if (name == "pooler.dense.bias") return std::string("cls.bias");
    return std::nullopt;
  }
  if (a.classifier) {
    static const std::map<std::string, std::string> kBertHead = {
        {"classifier.weight", "cls.output.weight"}, {"classifier.bias", "cls.output.bias"}};
    static const std::map<std::string, std::string> kRobertaHead = {
        {"classifier.dense.weight", "cls.weight"},
        {"classifier.dense.bias", "cls.bias"},
        {"classifier.out_proj.weight", "cls.output.weight"},
        {"classifier.out_proj.bias", "cls.output.bias"}};
    const auto& head = a.roberta ? kRobertaHead : kBertHead;
    if (auto it = head.find(name); it != head.end()) return it->second;
  }
  constexpr std::string_view kLayerPrefix = "encoder.layer.";
  if (!name.starts_with(kLayerPrefix)) return std::nullopt;
  const std::string rest = name.substr(kLayerPrefix.size());
  const size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string::npos || dot > 6) return std::nullopt;
  int64_t l = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return std::nullopt;
    l = l * 10 + (rest[i] - '0');
  }
  if (l >= n_layer) return std::nullopt;
  auto it = kLayer.find(rest.substr(dot + 1));
  if (it == kLayer.end()) return std::nullopt;
  return "blk." + std::to_string(l) + "." + it->second;
}

// Old checkpoints name LayerNorm parameters gamma / beta.
std::string canonical(std::string name) {
  for (const char* prefix : {"bert.", "roberta."})
    if (name.starts_with(prefix)) name = name.substr(std::strlen(prefix));
  if (name.ends_with(".gamma")) name = name.substr(0, name.size() - 6) + ".weight";
  if (name.ends_with(".beta")) name = name.substr(0, name.size() - 5) + ".bias";
  return name;
}

void add_tensors(const EncoderArch& a, const std::string& dir, int64_t n_layer,
                 int64_t position_offset, gguf::MemorySource& src) {
  std::shared_ptr<safetensors::Checkpoint> ck = safetensors::Checkpoint::open(dir);
  src.keep(ck);
  for (const safetensors::TensorView* t : ck->tensors()) {
    const std::optional<std::string> name = encoder_tensor_name(a, canonical(t->name), n_layer);
    if (!name)
      throw Error(t->file + ": tensor '" + t->name + "' has no counterpart in " +
                  std::string(a.hf_arch) + " (an unsupported variant?)");
    if (name->empty()) continue;
    if (t->shape.size() > 2)
      throw Error(t->file + ": tensor '" + t->name + "' has " + std::to_string(t->shape.size()) +
                  " dimensions (1 or 2 expected)");
    gguf::TensorInfo ti = tensor_from_checkpoint(*t, *name, src);
    if (ti.name == "position_embd.weight" && position_offset > 0) {
      // Whole rows dropped: the element alignment stays.
      if (ti.ne[1] <= position_offset)
        throw Error(t->file + ": position table shorter than its offset");
      const size_t row = row_size(ti.type, ti.ne[0]);
      ti.data += row * position_offset;
      ti.ne[1] -= position_offset;
      ti.n_bytes -= row * position_offset;
    }
    src.add_tensor(std::move(ti));
  }
}

}  // namespace

std::vector<std::string> encoder_architectures() {
  std::vector<std::string> v;
  for (const EncoderArch& a : kEncoders) v.emplace_back(a.hf_arch);
  return v;
}

bool is_encoder_architecture(const std::string& hf_arch) {
  return find_encoder(hf_arch) != nullptr;
}

void add_encoder_model(const json& cfg, const std::string& dir, const std::string& where,
                       gguf::MemorySource& src) {
  const std::string hf_arch = cfg["architectures"][0].get<std::string>();
  const EncoderArch* a = find_encoder(hf_arch);
  if (!a) throw Error(where + ": '" + hf_arch + "' is not an encoder architecture");
  const std::string p = "bert.";
  const int64_t n_embd = get_int(cfg, "hidden_size", where);
  const int64_t n_layer = get_int(cfg, "num_hidden_layers", where);
  const int64_t n_head = get_int(cfg, "num_attention_heads", where);
  if (n_embd % n_head != 0)
    throw Error(where + ": hidden_size is not a multiple of num_attention_heads");
  const std::string act = cfg.value("hidden_act", std::string("gelu"));
  if (act != "gelu")
    throw Error(where + ": hidden_act '" + act + "' is not supported (supported: gelu)");
  const std::string pos_type = cfg.value("position_embedding_type", std::string("absolute"));
  if (pos_type != "absolute")
    throw Error(where + ": position_embedding_type '" + pos_type +
                "' is not supported (supported: absolute)");
  double eps = 1e-12;
  if (cfg.contains("layer_norm_eps")) {
    if (!cfg["layer_norm_eps"].is_number() || !(cfg["layer_norm_eps"].get<double>() > 0))
      throw Error(where + ": layer_norm_eps must be a positive number");
    eps = cfg["layer_norm_eps"].get<double>();
  }
  // RoBERTa: position ids start after padding_idx.
  const int64_t offset = a->roberta ? get_int(cfg, "pad_token_id", where, 1) + 1 : 0;
  const int64_t n_pos = get_int(cfg, "max_position_embeddings", where, 512);
  if (n_pos <= offset) throw Error(where + ": max_position_embeddings too small");

  src.set_string("general.architecture", "bert");
  src.set_uint(p + "context_length", n_pos - offset);
  src.set_uint(p + "embedding_length", n_embd);
  src.set_uint(p + "feed_forward_length", get_int(cfg, "intermediate_size", where));
  src.set_uint(p + "block_count", n_layer);
  src.set_uint(p + "attention.head_count", n_head);
  src.set_float(p + "attention.layer_norm_epsilon", eps);
  src.set_bool(p + "attention.causal", false);

  VocabData vocab = read_tokenizer_dir(dir, &cfg);
  write_vocab_metadata(vocab, src);
  src.set_uint("tokenizer.ggml.token_type_count", get_int(cfg, "type_vocab_size", where, 2));

  if (a->classifier) {
    src.set_uint(p + "pooling_type", kPoolRank);
    // Labels in id order, as llama.cpp's converter writes them.
    if (cfg.contains("id2label") && cfg["id2label"].is_object()) {
      std::map<int64_t, std::string> labels;
      for (const auto& [k, v] : cfg["id2label"].items()) {
        try {
          labels[std::stoll(k)] = v.is_string() ? v.get<std::string>() : v.dump();
        } catch (const std::exception&) {
          throw Error(where + ": id2label key '" + k + "' is not an integer");
        }
      }
      std::vector<std::string> names;
      for (auto& [_, n] : labels) names.push_back(n);
      src.set_string_array(p + "classifier.output_labels", names);
    }
    // sentence-transformers' CrossEncoder: a sigmoid on one logit unless the model says
    // otherwise.
    std::string fn;
    if (cfg.contains("sentence_transformers") && cfg["sentence_transformers"].is_object())
      fn = cfg["sentence_transformers"].value("activation_fn", "");
    if (fn.empty()) fn = cfg.value("sbert_ce_default_activation_function", "");
    if (!fn.empty()) {
      if (fn.ends_with("Identity"))
        src.set_string(kScoreActivationKey, "identity");
      else if (fn.ends_with("Sigmoid"))
        src.set_string(kScoreActivationKey, "sigmoid");
      else
        throw Error(where + ": classifier activation '" + fn +
                    "' is not supported (Sigmoid, Identity)");
    }
  }
  add_tensors(*a, dir, n_layer, offset, src);
}

void add_sentence_transformers_metadata(const std::string& dir, const std::string& arch,
                                        gguf::MemorySource& src) {
  const fs::path d(dir);
  const fs::path modules_path = d / "modules.json";
  if (fs::exists(modules_path)) {
    const json modules = parse_json_file(modules_path);
    const std::string where = modules_path.string();
    if (!modules.is_array()) throw Error(where + ": not a list of modules");
    bool normalize = false;
    for (const json& m : modules) {
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
        throw Error(where + ": a module without a type");
      const std::string type = m["type"].get<std::string>();
      if (type == "sentence_transformers.models.Transformer") continue;
      if (type == "sentence_transformers.models.Normalize") {
        normalize = true;
        continue;
      }
      if (type != "sentence_transformers.models.Pooling")
        throw Error(where + ": module '" + type +
                    "' is not supported (Transformer, Pooling, Normalize)");
      const fs::path cfg_path = d / m.value("path", "") / "config.json";
      const json pc = parse_json_file(cfg_path);
      if (!pc.is_object()) throw Error(cfg_path.string() + ": not a JSON object");
      // Exactly one pooling mode, of those Tessera implements.
      std::vector<std::string> on;
      for (const auto& [k, v] : pc.items())
        if (k.starts_with("pooling_mode_") && v.is_boolean() && v.get<bool>()) on.push_back(k);
      static const std::map<std::string, uint32_t> kModes = {
          {"pooling_mode_mean_tokens", kPoolMean},
          {"pooling_mode_cls_token", kPoolCls},
          {"pooling_mode_lasttoken", kPoolLast}};
      if (on.size() != 1 || !kModes.contains(on[0]))
        throw Error(cfg_path.string() +
                    ": pooling must be exactly one of mean tokens, CLS token, last token");
      if (pc.contains("include_prompt") && pc["include_prompt"].is_boolean() &&
          !pc["include_prompt"].get<bool>())
        throw Error(cfg_path.string() + ": include_prompt = false is not supported");
      src.set_uint(arch + ".pooling_type", kModes.at(on[0]));
    }
    src.set_bool(kEmbedNormalizeKey, normalize);
  }
  const fs::path sb = d / "sentence_bert_config.json";
  if (fs::exists(sb)) {
    const json c = parse_json_file(sb);
    if (!c.is_object()) throw Error(sb.string() + ": not a JSON object");
    if (c.value("do_lower_case", false))
      throw Error(sb.string() + ": do_lower_case = true is not supported");
    if (c.contains("max_seq_length") && !c["max_seq_length"].is_null())
      src.set_uint(kEmbedMaxLenKey, get_int(c, "max_seq_length", sb.string()));
  }
}

}  // namespace tessera::hf
