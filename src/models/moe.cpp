// Mixture-of-experts decoders: Mixtral (arch "llama" with `expert_count`), Qwen2-MoE
// ("qwen2moe") and Qwen3-MoE ("qwen3moe"). The feed-forward block is
//
//   p = softmax(Wrouter · h)                        [n_expert]
//   E = the expert_used_count largest entries of p  (renormalized to sum 1: Mixtral, Qwen3-MoE)
//   ffn(h) = Σ_{e in E} p_e · Wdown_e · (silu(Wgate_e·h) * Wup_e·h)
//          + sigmoid(g·h) · shared(h)               (Qwen2-MoE's shared expert)
//
// with the expert weights in 3-D tensors ffn_{gate,up,down}_exps [n_expert, rows, cols].
// Attention is the family's: Llama (Mixtral), Qwen2 with QKV biases and NeoX RoPE,
// Qwen3 with QK-norm and NeoX RoPE.
#include "core/error.h"
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_moe_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                      const ModelOptions& opts) {
  const ModelConfig c = read_model_config(*file, arch);
  const std::string p = arch + ".";
  DecoderFeatures f;
  f.ffn = FfnKind::MOE;
  f.rope_neox = arch != "llama";
  f.qk_norm = arch == "qwen3moe";
  f.n_expert = static_cast<int>(file->get_int(p + "expert_count").value_or(0));
  f.n_expert_used = static_cast<int>(file->get_int(p + "expert_used_count").value_or(0));
  if (f.n_expert_used < 1) throw Error("'" + p + "expert_used_count' is missing");
  // Mixtral's experts are feed_forward_length wide; the Qwen files say so explicitly.
  f.n_ff_exp = static_cast<int>(file->get_int(p + "expert_feed_forward_length")
                                    .value_or(arch == "llama" ? c.n_ff : c.n_ff / f.n_expert_used));
  if (arch == "qwen2moe")
    f.n_ff_shexp =
        static_cast<int>(file->get_int(p + "expert_shared_feed_forward_length").value_or(c.n_ff));
  // Qwen2-MoE keeps the softmax probabilities of the chosen experts as they are.
  f.routing.norm_topk = file->get_bool(p + "expert_weights_norm").value_or(arch != "qwen2moe");
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
