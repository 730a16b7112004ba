#include "llm_core.h"

#include <limits>

#include "core/error.h"
#include "embed/tokenize_inputs.h"
#include "server/chat_messages.h"
#include "server/request_constraints.h"

namespace tessera::python {

using Clock = std::chrono::steady_clock;

LLMCore::LLMCore(const std::string& path, const LLMOptions& options) {
  model_ = load_model(path, options.model);
  const std::optional<EmbedTask> task = embedding_task(*model_, options.embed.task);
  if (!task) {
    engine_ = std::make_unique<Engine>(*model_, options.engine);
  } else {
    if (*task == EmbedTask::SCORE)
      throw Error(
          "this model is a cross-encoder (scoring); the Python package does not run "
          "cross-encoders yet (tessera serve does: /v1/rerank, /v1/score)");
    // As `tessera serve` sizes an embedding server: no KV cache, one batcher thread.
    EmbedOptions eo = options.embed;
    eo.max_model_len = options.engine.max_model_len;
    if (options.batched_tokens_given) eo.max_batch_tokens = options.engine.max_num_batched_tokens;
    runner_ =
        std::make_unique<EmbeddingRunner>(*model_, resolve_embed_settings(*model_, *task, eo));
    batcher_ = std::make_unique<EmbedBatcher>(*runner_, 1 << 24);
  }
  prompts_ = std::make_unique<PromptBuilder>(*model_);
}

LLMCore::~LLMCore() {
  // The threads go before the model they run.
  engine_.reset();
  batcher_.reset();
}

Engine& LLMCore::engine() {
  return const_cast<Engine&>(static_cast<const LLMCore&>(*this).engine());
}

const Engine& LLMCore::engine() const {
  if (!engine_)
    throw Error(
        "this model was loaded for embeddings (task 'embed'): use LLM.embed, or load "
        "it with task='generate'");
  return *engine_;
}

EmbedBatcher& LLMCore::embedder() {
  return const_cast<EmbedBatcher&>(static_cast<const LLMCore&>(*this).embedder());
}

const EmbedBatcher& LLMCore::embedder() const {
  if (!batcher_)
    throw Error(
        "this model was loaded for text generation: load it with task='embed' for "
        "embeddings (a decoder's pooled hidden states)");
  return *batcher_;
}

std::vector<EmbedInput> LLMCore::embed_inputs(const std::vector<std::string>& texts,
                                              const std::vector<bool>& is_text,
                                              std::vector<std::vector<int32_t>> ids,
                                              bool truncate) const {
  const EmbeddingRunner& runner = embedder().runner();
  std::vector<EmbedInput> inputs(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    try {
      if (is_text[i]) {
        if (texts[i].empty()) throw Error("the input is empty");
        inputs[i] = tokenize_text(tokenizer(), texts[i], runner.settings().max_len, truncate);
      } else {
        inputs[i].tokens = std::move(ids[i]);
      }
      runner.check(inputs[i]);
    } catch (const Error& e) {
      throw Error("prompt " + std::to_string(i) + ": " + e.what());
    }
  }
  return inputs;
}

const Tokenizer& LLMCore::tokenizer() const {
  return model_->tokenizer();
}

std::vector<int32_t> LLMCore::prompt_tokens(const std::string& text) const {
  PromptInput in;
  in.text = text;
  return prompts_->completion_tokens(in);
}

ChatPrompt LLMCore::chat_prompt(const nlohmann::ordered_json& fields,
                                const std::string& chat_template) const {
  CompletionRequest r;
  r.chat = true;
  r.messages = parse_chat_messages(fields.value("messages", nlohmann::ordered_json()));
  parse_template_fields(fields, r);
  r.tools = parse_tool_request(fields);
  std::unique_ptr<PromptBuilder> custom;
  if (!chat_template.empty()) custom = std::make_unique<PromptBuilder>(*model_, chat_template);
  return (custom ? *custom : *prompts_).chat_prompt(r);
}

CompletionRequest LLMCore::sampling(const nlohmann::ordered_json& fields) const {
  return parse_completion_options(fields, tokenizer().n_vocab());
}

GenerateJob::GenerateJob(LLMCore& core, std::vector<JobPrompt> prompts)
    : core_(core), prompts_(std::move(prompts)) {
  const int max_len = core_.engine().max_model_len();
  std::vector<int> max_tokens(prompts_.size());
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const std::string where = "prompt " + std::to_string(i) + ": ";
    const int n_prompt = static_cast<int>(prompts_[i].ids.size());
    const int asked = prompts_[i].params.max_tokens;  // 0: up to the context's end
    if (n_prompt == 0) throw Error(where + "the prompt is empty");
    if (n_prompt >= max_len)
      throw Error(where + "the prompt has " + std::to_string(n_prompt) +
                  " tokens, which leaves no room for a completion within max_model_len " +
                  std::to_string(max_len));
    if (asked > 0 && n_prompt + asked > max_len)
      throw Error(where + "the prompt (" + std::to_string(n_prompt) + " tokens) plus max_tokens (" +
                  std::to_string(asked) + ") exceeds max_model_len " + std::to_string(max_len));
    max_tokens[i] = asked > 0 ? asked : max_len - n_prompt;
  }
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const CompletionRequest& p = prompts_[i].params;
    auto gen = std::make_unique<Generation>(core_.engine(), core_.tokenizer(), nullptr, now);
    try {
      gen->submit({prompts_[i].ids}, {max_tokens[i]}, p.n, p.gen, p.stop);
    } catch (const EngineBusy&) {
      abort();
      throw;
    } catch (const Error& e) {
      abort();
      throw Error("prompt " + std::to_string(i) + ": " + e.what());
    }
    gens_.push_back(std::move(gen));
  }
}

GenerateJob::~GenerateJob() {
  abort();
}

void GenerateJob::abort() {
  for (auto& g : gens_) g->abort();
  first_live_ = gens_.size();
}

bool GenerateJob::poll(std::vector<JobDelta>& out, std::chrono::milliseconds timeout) {
  const size_t n0 = out.size();
  std::vector<ChoiceDelta> deltas;
  auto take = [&](size_t i, std::chrono::milliseconds t) {
    deltas.clear();
    if (gens_[i]->finished() || !gens_[i]->poll(deltas, t)) return;
    for (ChoiceDelta& d : deltas) out.push_back({static_cast<int>(i), std::move(d)});
  };
  for (size_t i = first_live_; i < gens_.size(); ++i) take(i, std::chrono::milliseconds(0));
  if (out.size() == n0 && first_live_ < gens_.size()) {
    take(first_live_, timeout);
    for (size_t i = first_live_ + 1; i < gens_.size(); ++i) take(i, std::chrono::milliseconds(0));
  }
  while (first_live_ < gens_.size() && gens_[first_live_]->finished()) ++first_live_;
  return out.size() > n0;
}

}  // namespace tessera::python
