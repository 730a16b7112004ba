// Gemma 3 (arch "gemma3", text). Differences from Llama:
//   - embeddings scaled by sqrt(n_embd);
//   - RMSNorm weights act as (1 + w): GGUF files store the sum already (the converter
//     adds 1), so the norms here are plain RMSNorm;
//   - norms before and after both blocks:  x += n_post(attn(n(x))),  x += n_post(ffn(n(x)));
//   - QK-norm (RMSNorm per head of q and k before RoPE), NeoX RoPE;
//   - GeGLU feed-forward: Wdown · (gelu_tanh(Wgate·x) * Wup·x);
//   - local layers (sliding window `attention.sliding_window`, their own RoPE base
//     `rope.freq_base_swa`, default 10000) interleaved with global ones: every 6th layer is
//     global unless `attention.sliding_window_pattern` says otherwise;
//   - attention scale 1/sqrt(query_pre_attn_scalar), which GGUF does not carry: head_dim,
//     except the 27B (62 layers) whose scalar is n_embd / n_head (as llama.cpp);
//   - optional final logit soft-capping.
#include <cmath>

#include "core/error.h"
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_gemma3_model(std::unique_ptr<gguf::Source> file,
                                         const std::string& arch, const ModelOptions& opts) {
  const ModelConfig c = read_model_config(*file, arch);
  const std::string p = arch + ".";
  DecoderFeatures f;
  f.rope_neox = true;
  f.embd_scale = true;
  f.qk_norm = true;
  f.post_norms = true;
  f.ffn = FfnKind::GEGLU;
  f.final_softcap =
      static_cast<float>(file->get_float(p + "final_logit_softcapping").value_or(0.0));
  f.attn_scale = c.n_layer == 62 ? 1.0f / std::sqrt(float(c.n_embd / c.n_head))
                                 : 1.0f / std::sqrt(float(c.head_dim));

  f.n_swa = static_cast<int>(file->get_int(p + "attention.sliding_window").value_or(0));
  if (f.n_swa > 0) {
    const std::string pat_key = p + "attention.sliding_window_pattern";
    const gguf::Value* pat = file->find(pat_key);
    if (pat && pat->type == gguf::ValueType::ARRAY) {  // one flag per layer
      if (static_cast<int>(pat->arr.size()) != c.n_layer)
        throw Error("'" + pat_key + "' must have one entry per layer");
      for (const gguf::Value& v : pat->arr) f.swa_layers.push_back(v.b || v.i != 0);
    } else {
      const int64_t n_pattern = file->get_int(pat_key).value_or(6);
      for (int l = 0; l < c.n_layer; ++l)
        f.swa_layers.push_back(n_pattern == 0 || l % n_pattern < n_pattern - 1);
    }
    f.rope_base_swa =
        static_cast<float>(file->get_float(p + "rope.freq_base_swa").value_or(10000.0));
  }
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
