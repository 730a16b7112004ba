#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/file.h"
#include "engine/kv_manager.h"
#include "engine/model_runner.h"
#include "engine/scheduler.h"
#include "engine/speculative.h"
#include "models/encoder.h"
#include "structured/sequence_grammar.h"

namespace tessera {

const char* finish_reason_text(RequestStatus s) {
  switch (s) {
    case RequestStatus::FINISHED_STOPPED:
      return "stop";
    case RequestStatus::FINISHED_LENGTH:
      return "length";
    case RequestStatus::FINISHED_ABORTED:
      return "abort";
    case RequestStatus::WAITING:
    case RequestStatus::RUNNING:
    case RequestStatus::PREEMPTED:
      break;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// RequestStream

std::shared_ptr<RequestStream> RequestStream::consumer_handle(std::shared_ptr<RequestStream> s) {
  // Built in place and never copied: each Hold drops the hold once, when it is destroyed.
  struct Hold {
    explicit Hold(std::shared_ptr<RequestStream> p) : s(std::move(p)) {}
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { s->drop_hold(); }
    std::shared_ptr<RequestStream> s;
  };
  RequestStream* p = s.get();
  return std::shared_ptr<RequestStream>(std::make_shared<Hold>(std::move(s)), p);
}

void RequestStream::push(RequestUpdate u) {
  // The engine's hold goes before the consumer can see the end.
  if (is_finished(u.finish) && !ended_.exchange(true)) drop_hold();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(u));
  }
  cv_.notify_all();
}

bool RequestStream::next(RequestUpdate& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return false;
  while (!queue_.empty()) {
    RequestUpdate& u = queue_.front();
    for (auto& t : u.tokens) out.tokens.push_back(std::move(t));
    out.n_prompt_tokens = u.n_prompt_tokens;
    out.n_cached_tokens = u.n_cached_tokens;
    if (is_finished(u.finish)) out.finish = u.finish;
    queue_.pop_front();
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Engine internals (engine thread only, except the input queue)

namespace {

// Available memory; 4 GiB where the system does not say.
int64_t available_or_4gib() {
  const size_t n = available_memory_bytes();
  return n > 0 ? static_cast<int64_t>(n) : int64_t{4} << 30;
}

struct Live {
  Request req;  // carries its GenerateParams and Sampler for the runner
  std::shared_ptr<RequestStream> stream;
};

}  // namespace

struct Engine::Impl {
  Impl(Engine& e) : engine(e) {}
  Engine& engine;
  std::unique_ptr<KVCache> kv;
  std::unique_ptr<KVCacheManager> kvm;
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<Speculator> spec;  // null: speculative decoding off

  // Input side, guarded by mu.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Live>> incoming;
  std::vector<uint64_t> aborts;
  bool abort_everything = false;
  int n_queued = 0;  // submitted and not yet running or finished
  bool stop = false;
  uint64_t next_id = 1;

  // Engine thread state.
  std::unordered_map<uint64_t, std::unique_ptr<Live>> live;

  mutable std::mutex metrics_mu;
  EngineMetrics metrics;

  // Token masks of constrained requests, computed beside the forward pass. Declared after
  // `live`: destroyed first, it finishes the jobs of requests still alive.
  std::unique_ptr<structured::MaskWorker> mask_worker;

  // Engine thread. Waits for work, takes submissions and aborts; false once stopping
  // (everything left was aborted).
  bool take_input();
  // The output processor: appends the sampled tokens to their requests, decides which
  // requests finished and tells every consumer.
  void update_from_output(const SchedulerOutput& out, RunnerOutput& ro);
  // The one place that decides the end of generation after `token` was appended to r.
  RequestStatus check_stop(const Request& r, int32_t token) const;
  void finish(Live& l, RequestStatus status);
  // The model threw during `out`: its requests end (aborted) and the error is logged.
  void fail_step(const SchedulerOutput& out, const char* what);
  void count_step(const SchedulerOutput& out, int64_t n_sampled);
  void refresh_gauges();  // under metrics_mu
  void update_queued();   // takes mu; engine thread
  // Speculative decoding: proposals for the sequences that decode this step.
  void propose();
};

Engine::Engine(Model& model, const EngineConfig& cfg) : model_(model), cfg_(cfg) {
  const ModelConfig& mc = model.config();
  if (cfg_.block_size < 1 || cfg_.block_size > 1024) throw Error("block size out of range");
  if (cfg_.max_num_seqs < 1) throw Error("max_num_seqs must be >= 1");
  if (cfg_.max_num_batched_tokens < 1) throw Error("max_num_batched_tokens must be >= 1");
  // An encoder has no language-model head: refused here, not on the engine thread.
  if (dynamic_cast<const EncoderModel*>(&model) != nullptr)
    throw Error("'" + mc.arch +
                "' is an encoder: it computes embeddings and scores, it does not generate text");
  max_model_len_ = cfg_.max_model_len > 0 ? cfg_.max_model_len : std::min(mc.n_ctx_train, 8192);

  if (cfg_.step_publisher != nullptr && cfg_.speculative.enabled())
    throw Error("speculative decoding does not run with tensor parallelism yet");
  const size_t per_token =
      cfg_.kv_bytes_per_token > 0
          ? cfg_.kv_bytes_per_token
          : KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), model.kv_cache_type());
  const size_t per_block = per_token * cfg_.block_size;
  const int64_t budget =
      cfg_.kv_cache_bytes > 0
          ? cfg_.kv_cache_bytes
          : static_cast<int64_t>(static_cast<double>(available_or_4gib()) * cfg_.kv_cache_fraction);
  const int64_t n_blocks = budget / static_cast<int64_t>(per_block);
  const int64_t need = (max_model_len_ + cfg_.block_size - 1) / cfg_.block_size;
  if (n_blocks < need)
    throw Error("KV cache of " + std::to_string(budget >> 20) + " MiB holds " +
                std::to_string(n_blocks * cfg_.block_size) +
                " tokens, fewer than one sequence of max_model_len " +
                std::to_string(max_model_len_) + "; raise the KV memory or lower max_model_len");
  if (n_blocks > (int64_t{1} << 30) / cfg_.block_size) throw Error("KV cache too large");

  impl_ = std::make_unique<Impl>(*this);
  impl_->kv = model.make_kv_cache(static_cast<int>(n_blocks), cfg_.block_size);
  impl_->kvm = std::make_unique<KVCacheManager>(static_cast<int>(n_blocks), cfg_.block_size,
                                                cfg_.enable_prefix_caching);
  SchedulerConfig sc;
  sc.max_num_seqs = cfg_.max_num_seqs;
  sc.max_num_batched_tokens = cfg_.max_num_batched_tokens;
  impl_->sched = std::make_unique<Scheduler>(sc, *impl_->kvm);
  impl_->runner = std::make_unique<ModelRunner>(model, *impl_->kv, cfg_.block_size);
  impl_->runner->set_publisher(cfg_.step_publisher);
  if (cfg_.speculative.enabled()) {
    impl_->spec = std::make_unique<Speculator>(cfg_.speculative, model,
                                               static_cast<int>(n_blocks) * cfg_.block_size,
                                               cfg_.block_size, cfg_.max_num_batched_tokens);
    impl_->runner->set_speculator(impl_->spec.get());
  }
  impl_->metrics.spec_enabled = impl_->spec != nullptr;
  impl_->metrics.kv_blocks_total = static_cast<int>(n_blocks);
  impl_->metrics.block_size = cfg_.block_size;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::check_request(const std::vector<int32_t>& prompt, const GenerateParams& p) const {
  const ModelConfig& mc = model_.config();
  if (prompt.empty()) throw Error("the prompt is empty");
  for (int32_t t : prompt)
    if (t < 0 || t >= mc.n_vocab)
      throw Error("token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                  std::to_string(mc.n_vocab - 1) + ")");
  if (p.max_tokens < 1) throw Error("max_tokens must be at least 1");
  if (static_cast<int64_t>(prompt.size()) + p.max_tokens > max_model_len_)
    throw Error("the prompt (" + std::to_string(prompt.size()) + " tokens) plus max_tokens (" +
                std::to_string(p.max_tokens) + ") exceeds the context length of " +
                std::to_string(max_model_len_) + " tokens");
  if (p.logprobs > 20) throw Error("top logprobs must be at most 20");
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= mc.n_vocab)
      throw Error("stop token id " + std::to_string(t) + " is outside the vocabulary");
}

std::shared_ptr<RequestStream> Engine::submit(std::vector<int32_t> prompt,
                                              const GenerateParams& p) {
  std::vector<std::vector<int32_t>> one;
  one.push_back(std::move(prompt));
  return submit_all(std::move(one), {p}).front();
}

std::vector<std::shared_ptr<RequestStream>> Engine::submit_all(
    std::vector<std::vector<int32_t>> prompts, const std::vector<GenerateParams>& params) {
  if (prompts.size() != params.size()) throw Error("submit_all: one GenerateParams per prompt");
  for (size_t i = 0; i < prompts.size(); ++i) check_request(prompts[i], params[i]);
  const int n_new = static_cast<int>(prompts.size());

  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!accepting_ || impl_->stop) throw EngineBusy("the server is shutting down", true);
  // All or nothing: a group that does not fit takes no slot another request could use.
  // Free running slots take queued requests on the next step, so they count as room.
  const int n_running = n_inflight_->load() - impl_->n_queued;
  const int room = cfg_.max_waiting + std::max(0, cfg_.max_num_seqs - n_running);
  if (impl_->n_queued + n_new > room)
    throw EngineBusy("too many requests are waiting (" + std::to_string(impl_->n_queued) +
                         (n_new > 1 ? ", and " + std::to_string(n_new) + " more asked for" : "") +
                         "); try again later",
                     false);
  const int n_vocab = model_.config().n_vocab;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = impl_->next_id++;
    r.n_prompt = static_cast<int>(prompts[i].size());
    r.tokens = std::move(prompts[i]);
    r.max_tokens = params[i].max_tokens;
    r.params = params[i];
    r.sampler = std::make_unique<Sampler>(params[i].sampling, n_vocab);
    auto stream = std::make_shared<RequestStream>(r.id, n_inflight_);
    streams.push_back(RequestStream::consumer_handle(stream));
    impl_->incoming.push_back(std::make_unique<Live>(Live{std::move(r), std::move(stream)}));
  }
  impl_->n_queued += n_new;
  impl_->cv.notify_all();
  return streams;
}

void Engine::abort(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->aborts.push_back(id);
  }
  impl_->cv.notify_all();
}

void Engine::abort_all() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->abort_everything = true;
  }
  impl_->cv.notify_all();
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lock(impl_->metrics_mu);
  EngineMetrics m = impl_->metrics;
  if (impl_->spec) {
    const SpeculativeMetrics sm = impl_->spec->metrics();
    m.spec_proposed = sm.proposed;
    m.spec_accepted = sm.accepted;
    m.spec_rounds = sm.rounds;
    m.spec_emitted = sm.emitted;
  }
  return m;
}

std::vector<Engine::Result> Engine::generate(const std::vector<std::vector<int32_t>>& prompts,
                                             const GenerateParams& p) {
  std::vector<Result> results(prompts.size());
  std::vector<std::shared_ptr<RequestStream>> streams;
  size_t next = 0, done = 0;
  std::vector<size_t> index_of;  // stream i -> prompt index
  while (done < prompts.size()) {
    // Keep the waiting queue within its bound: submit as room frees up.
    while (next < prompts.size()) {
      try {
        streams.push_back(submit(prompts[next], p));
        index_of.push_back(next++);
      } catch (const EngineBusy& e) {
        if (e.shutting_down) throw;
        break;
      }
    }
    for (size_t i = 0; i < streams.size(); ++i) {
      if (!streams[i]) continue;
      RequestUpdate u;
      if (!streams[i]->next(u, std::chrono::milliseconds(1))) continue;
      Result& r = results[index_of[i]];
      for (auto& t : u.tokens) r.tokens.push_back(std::move(t));
      r.n_prompt_tokens = u.n_prompt_tokens;
      r.n_cached_tokens = u.n_cached_tokens;
      if (is_finished(u.finish)) {
        r.finish = u.finish;
        streams[i].reset();
        ++done;
      }
    }
  }
  return results;
}

// One engine step: schedule -> run the model and sample -> apply the output.
void Engine::loop() {
  Impl& s = *impl_;
  while (s.take_input()) {
    const auto t0 = std::chrono::steady_clock::now();
    if (s.spec) s.propose();
    SchedulerOutput out = s.sched->schedule();
    s.update_queued();
    if (out.empty()) {
      // Nothing fits this step (cannot persist: the pool holds a max_model_len sequence,
      // and an idle engine frees everything). Yield instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    RunnerOutput ro;
    try {
      ro = s.runner->run(out);
    } catch (const std::exception& e) {
      s.fail_step(out, e.what());  // never let a model error end the engine thread
      continue;
    }
    if (s.spec)
      s.spec->observe_step(
          out.n_tokens,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    s.sched->step_done(out);
    s.update_from_output(out, ro);
  }
}

bool Engine::Impl::take_input() {
  std::vector<std::unique_ptr<Live>> in;
  std::vector<uint64_t> ab;
  bool stopping, everything;
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] {
      return stop || abort_everything || !incoming.empty() || !aborts.empty() || sched->has_work();
    });
    in.swap(incoming);
    ab.swap(aborts);
    stopping = stop;
    everything = abort_everything;
    abort_everything = false;
  }
  for (auto& l : in) {
    if (l->req.params.grammar) {
      if (!mask_worker) mask_worker = std::make_unique<structured::MaskWorker>();
      l->req.grammar =
          std::make_shared<structured::SequenceGrammar>(l->req.params.grammar, mask_worker.get());
      l->req.grammar->prefetch();  // the first mask, beside the prompt's prefill
    }
    sched->add(&l->req);
    const uint64_t id = l->req.id;
    live.emplace(id, std::move(l));
  }
  if (stopping || everything) {
    for (auto& [id, l] : live) finish(*l, RequestStatus::FINISHED_ABORTED);
    live.clear();
    return !stopping;
  }
  for (uint64_t id : ab) {
    auto it = live.find(id);
    if (it == live.end()) continue;
    finish(*it->second, RequestStatus::FINISHED_ABORTED);
    live.erase(it);
  }
  return true;
}

RequestStatus Engine::Impl::check_stop(const Request& r, int32_t token) const {
  const std::vector<int32_t>& stop_ids = r.params.stop_token_ids;
  const bool eog = engine.model_.tokenizer().is_eog(token);
  // Under a grammar an end-of-generation token was allowed only where it is complete.
  if (((!r.params.ignore_eos || r.grammar) && eog) ||
      std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end())
    return RequestStatus::FINISHED_STOPPED;
  if (r.n_output() >= r.max_tokens || r.n_tokens() >= engine.max_model_len_)
    return RequestStatus::FINISHED_LENGTH;
  return RequestStatus::RUNNING;
}

void Engine::Impl::update_from_output(const SchedulerOutput& out, RunnerOutput& ro) {
  int64_t n_sampled = 0;
  for (const auto& toks : ro.sampled) n_sampled += static_cast<int64_t>(toks.size());
  // Counters first: a client that has its last token may read /metrics at once, and must
  // find this step in them.
  count_step(out, n_sampled);

  for (size_t i = 0; i < out.items.size(); ++i) {
    if (ro.sampled[i].empty()) continue;
    Request& r = *out.items[i].req;
    Live& l = *live.at(r.id);
    RequestUpdate u;
    u.n_prompt_tokens = r.n_prompt;
    u.n_cached_tokens = std::max(0, r.n_cached_prompt);
    RequestStatus status = RequestStatus::RUNNING;
    for (GeneratedToken& g : ro.sampled[i]) {
      // Under a grammar: a token it rejects (none was allowed) ends the sequence cleanly,
      // without the token; one that completes it ends the sequence after the token.
      bool grammar_done = false;
      if (r.grammar && !engine.model_.tokenizer().is_eog(g.token)) {
        if (!r.grammar->accept(g.token)) {
          status = RequestStatus::FINISHED_STOPPED;
          break;
        }
        grammar_done = r.grammar->complete();
        if (!grammar_done) r.grammar->prefetch();
      }
      r.tokens.push_back(g.token);
      if (grammar_done) {
        status = RequestStatus::FINISHED_STOPPED;
        u.tokens.push_back(std::move(g));  // the grammar's last token is output
        break;
      }
      status = check_stop(r, g.token);
      // An end-of-generation token is not part of the output.
      if (status != RequestStatus::FINISHED_STOPPED) u.tokens.push_back(std::move(g));
      if (is_finished(status)) break;
    }
    if (!is_finished(status)) {
      // Speculative decoding: K/V of rejected proposals rolled back.
      if (!r.spec_tokens.empty()) Speculator::commit(*kvm, r);
      l.stream->push(std::move(u));
      continue;
    }
    if (!u.tokens.empty()) l.stream->push(std::move(u));
    finish(l, status);
    live.erase(r.id);
  }
  std::lock_guard<std::mutex> lock(metrics_mu);
  refresh_gauges();  // after the finished requests have left
}

void Engine::Impl::fail_step(const SchedulerOutput& out, const char* what) {
  std::fprintf(stderr, "engine: the model failed a step: %s\n", what);
  for (const ScheduledItem& it : out.items) {
    auto l = live.find(it.req->id);
    if (l == live.end()) continue;
    finish(*l->second, RequestStatus::FINISHED_ABORTED);
    live.erase(l);
  }
}

void Engine::Impl::update_queued() {
  // Queued = submitted but not running: still in `incoming` or waiting in the scheduler.
  std::lock_guard<std::mutex> lock(mu);
  n_queued = static_cast<int>(incoming.size()) + sched->n_waiting();
}

void Engine::Impl::finish(Live& l, RequestStatus status) {
  sched->finish(&l.req, status);
  // Before the client hears of the end: a request it submits next must find the room free.
  update_queued();
  if (spec) spec->release(l.req.id);
  {
    // Before the client hears of the end, so /metrics read right after agrees with it.
    std::lock_guard<std::mutex> lock(metrics_mu);
    ++metrics.requests_finished;
    refresh_gauges();
  }
  RequestUpdate u;
  u.finish = status;
  u.n_prompt_tokens = l.req.n_prompt;
  u.n_cached_tokens = std::max(0, l.req.n_cached_prompt);
  l.stream->push(std::move(u));
}

void Engine::Impl::count_step(const SchedulerOutput& out, int64_t n_sampled) {
  int64_t n_prompt_tokens = 0;
  for (const ScheduledItem& it : out.items) {
    const Request& r = *it.req;
    n_prompt_tokens += std::max(0, std::min(it.start + it.n_new, r.n_prompt) - it.start);
  }
  std::lock_guard<std::mutex> lock(metrics_mu);
  EngineMetrics& m = metrics;
  m.prefix_query_tokens = kvm->query_tokens();
  m.prefix_hit_tokens = kvm->hit_tokens();
  m.prompt_tokens_total += n_prompt_tokens;
  m.generation_tokens_total += n_sampled;
  m.preemptions_total += static_cast<int64_t>(out.preempted.size());
  ++m.steps_total;
}

void Engine::Impl::propose() {
  // Decoding sequences: one verified token left to compute. Room: the proposals and the
  // token after them must fit max_tokens and the context.
  std::vector<Speculator::Candidate> cands;
  for (auto& [id, lp] : live) {
    Request& r = lp->req;
    if (r.status != RequestStatus::RUNNING || r.n_tokens() - r.n_computed != 1) continue;
    // A grammar-constrained sequence decodes one token a step: its mask is for the state
    // after the last verified token, not after unverified proposals.
    if (r.grammar) continue;
    const int room =
        std::min(r.max_tokens - r.n_output() - 1, engine.max_model_len_ - r.n_tokens() - 1);
    cands.push_back({&r, &r.params.sampling, room});
  }
  spec->propose(cands, static_cast<int>(cands.size()));
}

void Engine::Impl::refresh_gauges() {
  metrics.n_running = sched->n_running();
  metrics.n_waiting = sched->n_waiting();
  metrics.kv_blocks_used = kvm->pool().n_used();
}

}  // namespace tessera
