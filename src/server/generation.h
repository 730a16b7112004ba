// The engine side of one HTTP request: its prompts x n choices submitted as engine
// requests, their update streams read, detokenized and cut at stop strings. Handlers pull
// ChoiceDeltas from poll() and only format them; nothing here knows about HTTP or JSON.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "tokenizer/detokenizer.h"

namespace tessera {

class ServerMetrics;

struct ChoiceDelta {
  int index = 0;
  std::string text;                               // newly final text
  std::vector<GeneratedToken> tokens;             // newly generated tokens (up to a stop match)
  RequestStatus finish = RequestStatus::RUNNING;  // set on the choice's last delta only
};

struct UsageCounts {
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

class Generation {
 public:
  // Choice i answers prompts[i / n]. `t_arrival` starts the time-to-first-token clock.
  Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics,
             std::chrono::steady_clock::time_point t_arrival);
  ~Generation();  // aborts choices still running (a handler that threw or a lost client)
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Submits every choice, n per prompt, with max_tokens[i] for prompts[i]. On EngineBusy /
  // Error aborts the choices already submitted and rethrows. `render_special`: the text
  // includes special tokens' text (output parsers look for markers that are special tokens).
  void submit(const std::vector<std::vector<int32_t>>& prompts, const std::vector<int>& max_tokens,
              int n, const GenerateParams& p, const std::vector<std::string>& stop,
              bool render_special = false);

  // Waits up to `timeout` for news and appends it to `out` (one delta per choice that
  // moved). Returns false when nothing happened.
  bool poll(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout);
  bool finished() const { return n_finished_ == static_cast<int>(choices_.size()); }
  int n_choices() const { return static_cast<int>(choices_.size()); }
  void abort();
  UsageCounts usage() const;

 private:
  struct Choice {
    int prompt_index = 0;
    int n_prompt = 0;
    int n_cached = 0;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<Detokenizer> detok;
    int n_generated = 0;
    bool got_first = false;
    std::chrono::steady_clock::time_point t_last;
    RequestStatus finish = RequestStatus::RUNNING;
  };
  // Applies one update to choice i; true when it produced a delta.
  bool absorb(int i, RequestUpdate& u, ChoiceDelta& d);
  void finish(int i, RequestStatus r);

  Engine& engine_;
  const Tokenizer& tok_;
  ServerMetrics* metrics_;
  std::chrono::steady_clock::time_point t_arrival_;
  std::vector<Choice> choices_;
  int n_finished_ = 0;
};

}  // namespace tessera
