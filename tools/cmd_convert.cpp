// tessera convert: a Hugging Face model directory (or a GGUF file) -> GGUF. With
// --load-format dummy, a config.json alone gives a random-weight model of that shape
// (synthetic models for benchmarks).
#include <chrono>
#include <cstdio>

#include "cli_common.h"
#include "core/error.h"
#include "loader/convert.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "loader/memory_source.h"
#include "models/weight_quant.h"

namespace tessera::cli {

Runner add_convert(CLI::App& app) {
  struct Opts {
    std::string model, out, type = "f16", load_format = "auto";
    uint64_t seed = 0;
    bool requantize = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "Hugging Face model directory (or a GGUF file)")
      ->required();
  app.add_option("-o,--output", o->out, "GGUF file to write")->required();
  app.add_option("--type", o->type,
                 "type of the weight matrices: f16 (default), f32, bf16, q8_0, q4_0, q4_1, "
                 "q5_0, q5_1");
  app.add_option("--load-format", o->load_format,
                 "auto, or dummy: random weights shaped by an HF config.json (a directory or "
                 "the file itself; a byte-level vocabulary is made up when no tokenizer "
                 "files are beside it)")
      ->check(CLI::IsMember({"auto", "dummy"}))
      ->capture_default_str();
  app.add_option("--dummy-seed", o->seed, "seed of the dummy weights")->capture_default_str();
  app.add_flag("--allow-requantize", o->requantize,
               "GGUF input: also convert quantized matrices (dequantized, then stored as "
               "--type); by default they are copied as they are");
  return [o] {
    const std::optional<DType> type = parse_weight_type(o->type);
    if (!type) throw Error("--type must name a weight type");
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<gguf::Source> src;
    const std::vector<std::pair<std::string, gguf::Value>>* kv = nullptr;
    if (o->load_format == "dummy") {
      // Made directly in the target type, so the tensors are copied as they are.
      hf::LoadOptions lo;
      lo.dummy_weights = true;
      lo.seed = o->seed;
      lo.dummy_type = *type;
      src = hf::open_hf_directory(o->model, lo);
      kv = &static_cast<const gguf::MemorySource&>(*src).metadata();
    } else if (hf::is_hf_path(o->model)) {
      src = hf::open_hf_directory(o->model);
      kv = &static_cast<const gguf::MemorySource&>(*src).metadata();
    } else {
      auto f = gguf::File::open(o->model);
      kv = &f->metadata();
      src = std::move(f);
    }
    const ConvertStats s = convert_to_gguf(*src, *kv, o->out, *type, o->requantize);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr,
                 "wrote %s: %d tensors (%d Q/K permuted for interleaved RoPE), %.1f MB, "
                 "%s, in %.2f s\n",
                 o->out.c_str(), s.n_tensors, s.n_permuted, s.n_bytes / 1e6, dtype_name(*type),
                 secs);
    return 0;
  };
}

}  // namespace tessera::cli
