// The C++ side of the Python package: LLMCore owns a loaded model, its continuous-batching
// engine and the prompt builder; a GenerateJob is one generate()/stream() call, its prompts
// submitted to the engine at once and read back through the server's Generation (n choices,
// detokenization, stop strings). Nothing here knows Python: module.cpp converts values and
// owns the GIL and signal handling.
//
//   LLM(...)  --> LLMCore: Model, Engine (its own thread), PromptBuilder; or, for an
//                 embedding model, an EmbeddingRunner and its EmbedBatcher (a thread)
//   generate  --> GenerateJob: one Generation per prompt --> Engine::submit
//                 poll() <-- ChoiceDeltas <-- RequestStreams
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "embed/batcher.h"
#include "engine/engine.h"
#include "llm_options.h"
#include "server/generation.h"
#include "server/openai_request.h"
#include "server/prompt_builder.h"

namespace tessera::python {

class LLMCore {
 public:
  // Loads the model and starts the engine. Throws Error for a bad file or bad options.
  LLMCore(const std::string& path, const LLMOptions& options);
  ~LLMCore();  // stops the engine (aborting what runs), then frees the model
  LLMCore(const LLMCore&) = delete;
  LLMCore& operator=(const LLMCore&) = delete;

  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const;
  // The generation engine; throws Error when the model was loaded for embeddings.
  Engine& engine();
  const Engine& engine() const;
  // The embedding batcher; throws Error when the model was loaded for generation.
  EmbedBatcher& embedder();
  const EmbedBatcher& embedder() const;
  bool generates() const { return engine_ != nullptr; }

  // Token ids of embedding inputs: texts tokenized as /v1/embeddings does (cut to the
  // model's longest input when `truncate`), token-id inputs as given; each checked by the
  // runner. Throws Error naming the input ("prompt 3: ...").
  std::vector<EmbedInput> embed_inputs(const std::vector<std::string>& texts,
                                       const std::vector<bool>& is_text,
                                       std::vector<std::vector<int32_t>> ids, bool truncate) const;
  // A text prompt's tokens as /v1/completions makes them (BOS/EOS as the model's metadata
  // asks, special-token text parsed). Throws ApiError for an empty prompt.
  std::vector<int32_t> prompt_tokens(const std::string& text) const;

  // A conversation rendered by the model's chat template, or by `chat_template` when it is
  // not empty, and tokenized as /v1/chat/completions does. `fields` holds the chat request
  // fields that feed the template (messages, tools, chat_template_kwargs, documents,
  // add_generation_prompt), checked as the server checks them.
  ChatPrompt chat_prompt(const nlohmann::ordered_json& fields,
                         const std::string& chat_template) const;

  // Sampling parameters in the server's field names, checked as the server checks them.
  CompletionRequest sampling(const nlohmann::ordered_json& fields) const;

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Engine> engine_;           // a generating model, or
  std::unique_ptr<EmbeddingRunner> runner_;  // an embedding model
  std::unique_ptr<EmbedBatcher> batcher_;
  std::unique_ptr<PromptBuilder> prompts_;
};

struct JobPrompt {
  std::vector<int32_t> ids;
  CompletionRequest params;  // gen, n, max_tokens (0: to the context's end), stop, logprobs
};

struct JobDelta {
  int prompt = 0;
  ChoiceDelta choice;  // choice.index: the choice within its prompt
};

class GenerateJob {
 public:
  // Checks every prompt against the context, then submits them all. Throws Error naming
  // the prompt ("prompt 3: ...") with nothing left running.
  GenerateJob(LLMCore& core, std::vector<JobPrompt> prompts);
  ~GenerateJob();  // aborts what still runs

  int n_prompts() const { return static_cast<int>(prompts_.size()); }
  const JobPrompt& prompt(int i) const { return prompts_[i]; }
  int n_cached_tokens(int i) const { return gens_[i]->usage().cached_tokens; }
  bool finished() const { return first_live_ == gens_.size(); }

  // Waits up to `timeout` for news and appends it to `out`; false when nothing happened.
  // Blocks on the oldest live prompt only (the engine is FIFO: it is running whenever any
  // is), then takes whatever the others have without waiting.
  bool poll(std::vector<JobDelta>& out, std::chrono::milliseconds timeout);
  void abort();

 private:
  LLMCore& core_;
  std::vector<JobPrompt> prompts_;
  std::vector<std::unique_ptr<Generation>> gens_;
  size_t first_live_ = 0;  // gens_[i] finished for every i < first_live_
};

}  // namespace tessera::python
