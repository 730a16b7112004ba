#include "server/generation.h"

#include "server/metrics.h"

namespace tessera {

using Clock = std::chrono::steady_clock;

Generation::Generation(Engine& engine, const Tokenizer& tok, ServerMetrics* metrics,
                       Clock::time_point t_arrival)
    : engine_(engine), tok_(tok), metrics_(metrics), t_arrival_(t_arrival) {}

Generation::~Generation() {
  abort();
}

void Generation::submit(const std::vector<std::vector<int32_t>>& prompts,
                        const std::vector<int>& max_tokens, int n, const GenerateParams& params,
                        const std::vector<std::string>& stop, bool render_special) {
  // Every choice of every prompt goes to the engine in one all-or-nothing submission: a
  // request the queue cannot take whole is refused without displacing anyone else's.
  std::vector<std::vector<int32_t>> seqs;
  std::vector<GenerateParams> seq_params;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    GenerateParams p = params;
    p.max_tokens = max_tokens[pi];
    for (int j = 0; j < n; ++j) {
      // With a seed, choice j samples with seed + j (as vLLM does): n different samples,
      // each reproducible.
      if (params.sampling.has_seed) p.sampling.seed = params.sampling.seed + j;
      Choice c;
      c.prompt_index = static_cast<int>(pi);
      c.n_prompt = static_cast<int>(prompts[pi].size());
      c.detok = std::make_unique<Detokenizer>(tok_, stop, render_special);
      choices_.push_back(std::move(c));
      // Identical prompts share their KV blocks through the engine's prefix cache.
      seqs.push_back(prompts[pi]);
      seq_params.push_back(p);
    }
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    streams = engine_.submit_all(std::move(seqs), seq_params);
  } catch (...) {
    choices_.clear();
    throw;
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    choices_[i].stream = std::move(streams[i]);
  }
}

void Generation::finish(int i, RequestStatus r) {
  Choice& c = choices_[i];
  if (is_finished(c.finish)) return;
  c.finish = r;
  ++n_finished_;
}

void Generation::abort() {
  for (int i = 0; i < n_choices(); ++i) {
    if (is_finished(choices_[i].finish)) continue;
    engine_.abort(choices_[i].stream->id());
    finish(i, RequestStatus::FINISHED_ABORTED);
  }
}

bool Generation::absorb(int i, RequestUpdate& u, ChoiceDelta& d) {
  Choice& c = choices_[i];
  if (is_finished(c.finish)) return false;  // e.g. the ABORT after a stop match
  d.index = i;
  if (u.n_prompt_tokens > 0) c.n_cached = u.n_cached_tokens;

  if (!u.tokens.empty()) {
    const Clock::time_point now = Clock::now();
    if (metrics_) {
      // The first token closes TTFT; later ones share the gap since the previous update.
      size_t k0 = 0;
      if (!c.got_first) {
        metrics_->observe_ttft(std::chrono::duration<double>(now - t_arrival_).count());
        k0 = 1;
      }
      const size_t rest = u.tokens.size() - k0;
      if (rest > 0) {
        const double gap = std::chrono::duration<double>(now - c.t_last).count() / rest;
        for (size_t k = 0; k < rest; ++k) metrics_->observe_itl(gap);
      }
    }
    c.got_first = true;
    c.t_last = now;
  }

  for (GeneratedToken& t : u.tokens) {
    // End-of-generation tokens are counted and reported in logprobs but are not text,
    // whatever their vocab type (some vocabularies mark them user-defined).
    if (!tok_.is_eog(t.token)) d.text += c.detok->feed(t.token);
    d.tokens.push_back(std::move(t));
    ++c.n_generated;
    if (c.detok->stopped()) {
      // Tokens after the one that completed the stop string are dropped; the engine may
      // already have produced more, so the request is cancelled, not left to run.
      engine_.abort(c.stream->id());
      finish(i, RequestStatus::FINISHED_STOPPED);
      d.finish = RequestStatus::FINISHED_STOPPED;
      return true;
    }
  }
  if (is_finished(u.finish)) {
    d.text += c.detok->flush();
    finish(i, u.finish);
    d.finish = u.finish;
  }
  return !d.text.empty() || !d.tokens.empty() || is_finished(d.finish);
}

bool Generation::poll(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout) {
  bool any = false;
  // First take whatever is ready without blocking; block on one live choice only if
  // nothing was. n > 1 choices advance in the same engine steps, so waiting on one
  // costs the others at most one step of latency.
  for (int pass = 0; pass < 2 && !any; ++pass) {
    int waited = 0;
    for (int i = 0; i < n_choices(); ++i) {
      Choice& c = choices_[i];
      if (is_finished(c.finish)) continue;
      const auto t = (pass == 1 && waited++ == 0) ? timeout : std::chrono::milliseconds(0);
      RequestUpdate u;
      if (!c.stream->next(u, t)) continue;
      ChoiceDelta d;
      if (absorb(i, u, d)) {
        out.push_back(std::move(d));
        any = true;
      }
    }
  }
  return any;
}

UsageCounts Generation::usage() const {
  UsageCounts u;
  int last_prompt = -1;
  for (const Choice& c : choices_) {
    u.completion_tokens += c.n_generated;
    // A prompt counts once however many choices it has (as OpenAI counts); its cached
    // tokens are those of its first choice.
    if (c.prompt_index != last_prompt) {
      u.prompt_tokens += c.n_prompt;
      u.cached_tokens += c.n_cached;
      last_prompt = c.prompt_index;
    }
  }
  return u;
}

}  // namespace tessera
