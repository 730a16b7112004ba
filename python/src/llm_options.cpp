#include "llm_options.h"

#include <cstdint>

#include "core/byte_size.h"
#include "core/error.h"

namespace tessera::python {

using json = nlohmann::ordered_json;

namespace {

[[noreturn]] void bad(const char* name, const std::string& msg) {
  throw Error(std::string(name) + ": " + msg);
}

int64_t as_int(const json& v, const char* name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(name, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(name, "must be at most " + std::to_string(hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad(name, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  std::to_string(x));
  return x;
}

bool as_bool(const json& v, const char* name) {
  if (!v.is_boolean()) bad(name, "must be a bool");
  return v.get<bool>();
}

std::string as_choice(const json& v, const char* name, const std::vector<std::string>& choices) {
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
  if (!v.is_string()) bad(name, "must be a string (" + list + ")");
  const std::string s = v.get<std::string>();
  for (const std::string& c : choices)
    if (s == c) return s;
  bad(name, "unknown value '" + s + "' (" + list + ")");
}

std::vector<LLMOptionSpec> make_specs() {
  std::vector<LLMOptionSpec> t;
  // Model loading.
  t.push_back(
      {"threads", "int", "compute threads (0: all cores)", [](LLMOptions& o, const json& v) {
         o.model.n_threads = static_cast<int>(as_int(v, "threads", 0, 1024));
       }});
  t.push_back({"quantization", "str",
               "convert F32/F16/BF16 weight matrices while loading (q8_0, q4_0, q4_1, q5_0, "
               "q5_1, f16, bf16, f32)",
               [](LLMOptions& o, const json& v) {
                 if (!v.is_string()) bad("quantization", "must be a string");
                 o.model.quantization = v.get<std::string>();
               }});
  t.push_back({"load_format", "str",
               "auto (GGUF file or Hugging Face directory), gguf, hf, or dummy (random weights "
               "shaped by an HF config.json)",
               [](LLMOptions& o, const json& v) {
                 o.model.load_format = as_choice(v, "load_format", {"auto", "gguf", "hf", "dummy"});
               }});
  t.push_back({"dummy_seed", "int", "seed of the dummy weights (load_format='dummy')",
               [](LLMOptions& o, const json& v) {
                 o.model.dummy_seed = static_cast<uint64_t>(as_int(v, "dummy_seed", 0, INT64_MAX));
               }});
  t.push_back({"kv_cache_dtype", "str",
               "KV cache storage: auto or f16 (default, as llama.cpp), f32 (exact attention)",
               [](LLMOptions& o, const json& v) {
                 const std::string s = as_choice(v, "kv_cache_dtype", {"auto", "f16", "f32"});
                 o.model.kv_cache_type = s == "auto" ? "f16" : s;
               }});
  t.push_back({"repack", "bool",
               "interleave Q4_0/Q8_0 rows at load for faster decode on AVX-512 VNNI CPUs "
               "(same results; default True)",
               [](LLMOptions& o, const json& v) { o.model.repack = as_bool(v, "repack"); }});
  // What the model serves, and how embeddings are made.
  t.push_back({"task", "str",
               "auto (encoders: embed; decoders: generate), generate, or embed (a decoder's "
               "pooled hidden states)",
               [](LLMOptions& o, const json& v) {
                 o.embed.task = as_choice(v, "task", {"auto", "generate", "embed"});
               }});
  t.push_back({"pooling", "str",
               "embedding pooling: mean, cls or last (default: the model's sentence-transformers "
               "configuration, else cls for encoders, last for decoders)",
               [](LLMOptions& o, const json& v) {
                 o.embed.pooling = as_choice(v, "pooling", {"mean", "cls", "last"});
               }});
  t.push_back({"normalize", "bool", "L2-normalize embeddings (default: as the model's files say)",
               [](LLMOptions& o, const json& v) { o.embed.normalize = as_bool(v, "normalize"); }});
  // The engine.
  t.push_back({"kv_cache_memory", "int | str",
               "KV cache size in bytes, or a size such as '2GiB' (default: a quarter of the "
               "available memory)",
               [](LLMOptions& o, const json& v) {
                 if (v.is_string())
                   o.engine.kv_cache_bytes =
                       parse_byte_size(v.get<std::string>(), "kv_cache_memory");
                 else
                   o.engine.kv_cache_bytes = as_int(v, "kv_cache_memory", 1, int64_t{1} << 62);
               }});
  t.push_back({"max_num_seqs", "int", "sequences per engine step (default 64)",
               [](LLMOptions& o, const json& v) {
                 o.engine.max_num_seqs = static_cast<int>(as_int(v, "max_num_seqs", 1, 4096));
               }});
  t.push_back({"max_num_batched_tokens", "int",
               "tokens per engine step (default 512); embedding models: per forward pass",
               [](LLMOptions& o, const json& v) {
                 o.engine.max_num_batched_tokens =
                     static_cast<int>(as_int(v, "max_num_batched_tokens", 1, 1 << 20));
                 o.batched_tokens_given = true;
               }});
  t.push_back({"max_model_len", "int",
               "prompt + completion limit (default: the model's context, at most 8192)",
               [](LLMOptions& o, const json& v) {
                 o.engine.max_model_len = static_cast<int>(as_int(v, "max_model_len", 1, 1 << 24));
               }});
  t.push_back({"enable_prefix_caching", "bool",
               "share KV blocks between prompts with the same prefix (default True)",
               [](LLMOptions& o, const json& v) {
                 o.engine.enable_prefix_caching = as_bool(v, "enable_prefix_caching");
               }});
  t.push_back(
      {"block_size", "int", "tokens per KV block (default 16)", [](LLMOptions& o, const json& v) {
         o.engine.block_size = static_cast<int>(as_int(v, "block_size", 1, 1024));
       }});
  return t;
}

}  // namespace

const std::vector<LLMOptionSpec>& llm_option_specs() {
  static const std::vector<LLMOptionSpec> specs = make_specs();
  return specs;
}

const LLMOptionSpec* find_llm_option(const std::string& name) {
  for (const LLMOptionSpec& s : llm_option_specs())
    if (name == s.name) return &s;
  return nullptr;
}

LLMOptions default_llm_options() {
  LLMOptions o;
  o.engine.max_waiting = 1 << 24;
  return o;
}

}  // namespace tessera::python
