// tessera info: what a model file (GGUF or Hugging Face directory) holds.
#include <cstdio>
#include <map>

#include "cli_common.h"
#include "embed/embedding.h"
#include "loader/gguf.h"
#include "models/encoder.h"
#include "models/model.h"

namespace tessera::cli {

namespace {

std::string token_desc(const Tokenizer& tok, int32_t id) {
  if (id < 0 || id >= tok.n_vocab()) return "none";
  return std::to_string(id) + " '" + tok.token_text(id) + "'";
}

// The architecture table: GGUF architecture, families, features, HF classes, dummy shapes.
int print_architectures() {
  for (const ArchitectureInfo& a : architecture_table()) {
    std::printf("%s\n  families:     %s\n  features:     %s\n", a.name.c_str(), a.families.c_str(),
                a.features.c_str());
    std::string hf, dummy;
    for (const auto& h : a.hf_archs) hf += (hf.empty() ? "" : ", ") + h;
    for (const auto& h : a.dummy_archs) dummy += (dummy.empty() ? "" : ", ") + h;
    std::printf("  GGUF:         yes\n  HF directory: %s\n  dummy:        %s\n",
                hf.empty() ? "no" : hf.c_str(), dummy.empty() ? "no" : dummy.c_str());
  }
  return 0;
}

}  // namespace

Runner add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto archs = std::make_shared<bool>(false);
  auto* m = app.add_option("-m,--model", *path, "GGUF model file or Hugging Face directory");
  app.add_flag("--archs", *archs,
               "list the supported architectures and what each supports (no model needed)");
  app.callback([m, archs] {
    if (!*archs && m->count() == 0) throw CLI::RequiredError("--model");
  });
  return [path, archs] {
    if (*archs) return print_architectures();
    ModelOptions mo;
    mo.n_threads = 1;
    auto model = load_model(*path, mo);
    const ModelConfig& c = model->config();
    const gguf::Source& f = model->file();
    const Tokenizer& tok = model->tokenizer();

    int64_t n_params = 0;
    size_t n_bytes = 0;
    std::map<std::string, int> types;
    for (const auto& t : f.tensors()) {
      n_params += t.n_elements();
      n_bytes += t.n_bytes;
      ++types[dtype_name(plain_type(t.type))];  // as in the file, before any repacking
    }
    std::printf("file:             %s (%s)\n", path->c_str(), f.format().c_str());
    std::printf("name:             %s\n", c.name.c_str());
    std::printf("architecture:     %s\n", c.arch.c_str());
    std::printf("parameters:       %lld (%.2f M)\n", static_cast<long long>(n_params),
                n_params / 1e6);
    std::printf("tensor data:      %.2f MiB in %zu tensors\n", n_bytes / 1048576.0,
                f.tensors().size());
    std::printf("tensor types:    ");
    for (const auto& [name, count] : types) std::printf(" %s x%d", name.c_str(), count);
    std::printf("\n");
    std::printf("context length:   %d\n", c.n_ctx_train);
    std::printf("layers:           %d\n", c.n_layer);
    std::printf("embedding:        %d\n", c.n_embd);
    std::printf("feed-forward:     %d\n", c.n_ff);
    std::printf("heads:            %d (kv %d, head dim %d)\n", c.n_head, c.n_head_kv, c.head_dim);
    if (std::optional<EmbedTask> task = embedding_task(*model, "auto")) {
      // An encoder: what it serves, with its own settings.
      const EmbedSettings es = resolve_embed_settings(*model, *task, {});
      if (*task == EmbedTask::SCORE)
        std::printf("serves:           scores (cross-encoder, %d label(s), %s)\n",
                    static_cast<const EncoderModel&>(*model).n_labels(),
                    es.sigmoid ? "sigmoid" : "raw logits");
      else
        std::printf("serves:           embeddings (%s pooling, %s)\n", pooling_name(es.pooling),
                    es.normalize ? "normalized" : "not normalized");
      std::printf("max input:        %d tokens\n", es.max_len);
    } else {
      std::printf("rope:             %s, base %.1f, %d dims, scaling x%.2f\n",
                  c.rope_neox ? "neox" : "normal", c.rope_freq_base, c.n_rot,
                  c.rope_scaling_factor);
      std::printf("rms norm eps:     %g\n", c.rms_eps);
    }
    std::printf("tokenizer:        %s%s%s, %d tokens\n", tok.kind(),
                tok.pre().empty() ? "" : ", pre ", tok.pre().c_str(), tok.n_vocab());
    std::printf("bos:              %s%s\n", token_desc(tok, tok.bos_id()).c_str(),
                tok.add_bos() ? " (added)" : "");
    std::printf("eos:              %s\n", token_desc(tok, tok.eos_id()).c_str());
    std::printf("eot:              %s\n", token_desc(tok, tok.eot_id()).c_str());
    std::printf("chat template:    %s\n", f.get_string("tokenizer.chat_template") ? "yes" : "no");
    std::printf("supported archs: ");
    for (const auto& a : supported_architectures()) std::printf(" %s", a.c_str());
    std::printf("  (tessera info --archs: what each supports)\n");
    return 0;
  };
}

}  // namespace tessera::cli
