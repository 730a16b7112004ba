// The engine options of the Python package's LLM(model, **options): one table, name ->
// how the value is checked and where it goes (model loading or the engine). A new engine
// feature (speculative decoding, structured output, ...) becomes a keyword of LLM() by
// adding a row here; nothing else in the binding changes.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "embed/embedding.h"
#include "engine/engine.h"
#include "models/model.h"

namespace tessera::python {

struct LLMOptions {
  ModelOptions model;
  EngineConfig engine;
  EmbedOptions embed;                 // task, pooling, normalize (embedding models)
  bool batched_tokens_given = false;  // max_num_batched_tokens was set (it sizes embed passes too)
};

struct LLMOptionSpec {
  const char* name;
  const char* type;  // as Python spells it, for documentation: "int", "str | int", ...
  const char* help;
  // Checks `value` (never null: None keeps the default) and stores it. Throws Error
  // naming the option.
  std::function<void(LLMOptions&, const nlohmann::ordered_json& value)> apply;
};

// Every option, in documentation order.
const std::vector<LLMOptionSpec>& llm_option_specs();
// The row of `name`, or nullptr.
const LLMOptionSpec* find_llm_option(const std::string& name);

// The defaults of LLM(): the engine's, except that the waiting queue is unbounded in
// practice (an offline batch of any size is queued at once, as vLLM's LLM does).
LLMOptions default_llm_options();

}  // namespace tessera::python
