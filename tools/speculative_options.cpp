// --speculative-* options shared by `run` and `serve`.
#include "cli_common.h"
#include "core/error.h"
#include "spec/proposer.h"

namespace tessera::cli {

CLI::Option* add_speculative_options(CLI::App& app, SpeculativeConfig& sc) {
  // Ranges are checked by validate_speculative_config, with messages naming the limits.
  app.add_option("--speculative-method", sc.method,
                 "speculative decoding: ngram (prompt lookup) or draft (--speculative-model)")
      ->check(CLI::IsMember({"ngram", "draft"}));
  app.add_option("--speculative-model", sc.draft_model,
                 "draft model (GGUF file or HF directory) with the target's vocabulary");
  CLI::Option* k =
      app.add_option("--num-speculative-tokens", sc.num_speculative_tokens,
                     "most tokens proposed per sequence and step (default 5 when a method is set)");
  app.add_option("--ngram-min", sc.ngram_min, "shortest suffix the n-gram lookup matches")
      ->capture_default_str();
  app.add_option("--ngram-max", sc.ngram_max, "longest suffix the n-gram lookup matches")
      ->capture_default_str();
  app.add_option("--speculative-disable-by-batch-size", sc.disable_by_batch_size,
                 "no speculation while more sequences than this decode (0: never off)")
      ->capture_default_str();
  app.add_flag("!--no-speculative-adaptive", sc.adaptive,
               "always propose the full K tokens (by default k shrinks per sequence while its "
               "proposals are rejected)");
  return k;
}

void finish_speculative_options(SpeculativeConfig& sc, bool k_given) {
  if (!sc.method.empty() && !k_given) sc.num_speculative_tokens = 5;
  if (sc.method.empty() && (k_given || !sc.draft_model.empty()))
    throw Error("--num-speculative-tokens / --speculative-model need --speculative-method");
  validate_speculative_config(sc);
}

}  // namespace tessera::cli
