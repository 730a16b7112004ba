#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "engine/kv_manager.h"
#include "engine/scheduler.h"
#include "engine/speculative.h"

namespace tessera {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::STOP:
      return "stop";
    case FinishReason::LENGTH:
      return "length";
    case FinishReason::ABORT:
      return "abort";
    case FinishReason::NONE:
      break;
  }
  return "";
}

// ---------------------------------------------------------------------------------------
// RequestStream

void RequestStream::push(RequestUpdate u) {
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
    if (u.finish != FinishReason::NONE) out.finish = u.finish;
    queue_.pop_front();
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Engine internals (engine thread only, except the input queue)

namespace {

struct Live {
  Request req;
  GenerateParams params;
  Sampler sampler;
  std::shared_ptr<RequestStream> stream;
  Live(Request r, const GenerateParams& p, int n_vocab, std::shared_ptr<RequestStream> s)
      : req(std::move(r)), params(p), sampler(p.sampling, n_vocab), stream(std::move(s)) {}
};

int64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return int64_t{4} << 30;
}

}  // namespace

struct Engine::Impl {
  std::unique_ptr<KVCache> kv;
  std::unique_ptr<KVCacheManager> kvm;
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<Speculator> spec;  // null: speculative decoding off

  // Input side, guarded by mu.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Live>> incoming;
  std::vector<uint64_t> aborts;
  int n_queued = 0;  // submitted and not yet running or finished
  bool stop = false;
  uint64_t next_id = 1;

  // Engine thread state.
  std::unordered_map<uint64_t, std::unique_ptr<Live>> live;
  std::vector<int32_t> tokens, pos, seq_of, slots, out_rows;
  std::vector<uint8_t> prompt_tiled;  // per batch row: AttentionBatch::prompt_tiled
  std::vector<const int32_t*> tables;
  std::vector<float> logits, scratch;

  mutable std::mutex metrics_mu;
  EngineMetrics metrics;
};

Engine::Engine(Model& model, const EngineConfig& cfg) : model_(model), cfg_(cfg) {
  const ModelConfig& mc = model.config();
  if (cfg_.block_size < 1 || cfg_.block_size > 1024) throw Error("block size out of range");
  if (cfg_.max_num_seqs < 1) throw Error("max_num_seqs must be >= 1");
  if (cfg_.max_num_batched_tokens < 1) throw Error("max_num_batched_tokens must be >= 1");
  max_model_len_ = cfg_.max_model_len > 0 ? cfg_.max_model_len : std::min(mc.n_ctx_train, 8192);

  const size_t per_block =
      KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), model.kv_cache_type()) * cfg_.block_size;
  const int64_t budget =
      cfg_.kv_cache_bytes > 0
          ? cfg_.kv_cache_bytes
          : static_cast<int64_t>(available_memory_bytes() * cfg_.kv_cache_fraction);
  const int64_t n_blocks = budget / static_cast<int64_t>(per_block);
  const int64_t need = (max_model_len_ + cfg_.block_size - 1) / cfg_.block_size;
  if (n_blocks < need)
    throw Error("KV cache of " + std::to_string(budget >> 20) + " MiB holds " +
                std::to_string(n_blocks * cfg_.block_size) +
                " tokens, fewer than one sequence of max_model_len " +
                std::to_string(max_model_len_) + "; raise the KV memory or lower max_model_len");
  if (n_blocks > (int64_t{1} << 30) / cfg_.block_size) throw Error("KV cache too large");

  impl_ = std::make_unique<Impl>();
  impl_->kv = model.make_kv_cache(static_cast<int>(n_blocks), cfg_.block_size);
  impl_->kvm = std::make_unique<KVCacheManager>(static_cast<int>(n_blocks), cfg_.block_size,
                                                cfg_.enable_prefix_caching);
  SchedulerConfig sc;
  sc.max_num_seqs = cfg_.max_num_seqs;
  sc.max_num_batched_tokens = cfg_.max_num_batched_tokens;
  impl_->sched = std::make_unique<Scheduler>(sc, *impl_->kvm);
  // One logit row per sampled sequence, k + 1 for a speculative one.
  const int rows_per_seq =
      1 + (cfg_.speculative.enabled() ? cfg_.speculative.num_speculative_tokens : 0);
  impl_->logits.resize(static_cast<size_t>(cfg_.max_num_seqs) * rows_per_seq * mc.n_vocab);
  if (cfg_.speculative.enabled())
    impl_->spec = std::make_unique<Speculator>(cfg_.speculative, model,
                                               static_cast<int>(n_blocks) * cfg_.block_size,
                                               cfg_.block_size, cfg_.max_num_batched_tokens);
  impl_->metrics.spec_enabled = impl_->spec != nullptr;
  impl_->metrics.kv_blocks_total = static_cast<int>(n_blocks);
  impl_->metrics.block_size = cfg_.block_size;
  std::fprintf(stderr,
               "engine: KV cache %lld blocks x %d tokens (%.1f MiB, %lld tokens), max_model_len "
               "%d, max_num_seqs %d, max_num_batched_tokens %d, prefix caching %s\n",
               static_cast<long long>(n_blocks), cfg_.block_size, impl_->kv->bytes() / 1048576.0,
               static_cast<long long>(n_blocks * cfg_.block_size), max_model_len_,
               cfg_.max_num_seqs, cfg_.max_num_batched_tokens,
               cfg_.enable_prefix_caching ? "on" : "off");
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
  const int n_running = n_inflight_.load() - impl_->n_queued;
  const int room = cfg_.max_waiting + std::max(0, cfg_.max_num_seqs - n_running);
  if (impl_->n_queued + n_new > room)
    throw EngineBusy("too many requests are waiting (" + std::to_string(impl_->n_queued) +
                         (n_new > 1 ? ", and " + std::to_string(n_new) + " more asked for" : "") +
                         "); try again later",
                     false);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = impl_->next_id++;
    r.n_prompt = static_cast<int>(prompts[i].size());
    r.tokens = std::move(prompts[i]);
    r.max_tokens = params[i].max_tokens;
    auto stream = std::make_shared<RequestStream>(r.id);
    impl_->incoming.push_back(
        std::make_unique<Live>(std::move(r), params[i], model_.config().n_vocab, stream));
    streams.push_back(std::move(stream));
  }
  impl_->n_queued += n_new;
  n_inflight_ += n_new;
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
      if (u.finish != FinishReason::NONE) {
        r.finish = u.finish;
        streams[i].reset();
        ++done;
      }
    }
  }
  return results;
}

void Engine::loop() {
  Impl& s = *impl_;
  const ModelConfig& mc = model_.config();
  const Tokenizer& tok = model_.tokenizer();
  const int n_vocab = mc.n_vocab;
  const int B = cfg_.block_size;

  auto finish = [&](Live& l, FinishReason why, RequestStatus status) {
    s.sched->finish(&l.req, status);
    if (s.spec) s.spec->release(l.req.id);
    {
      // Before the client hears of the end, so /metrics read right after agrees with it.
      std::lock_guard<std::mutex> lock(s.metrics_mu);
      ++s.metrics.requests_finished;
      s.metrics.n_running = s.sched->n_running();
      s.metrics.n_waiting = s.sched->n_waiting();
      s.metrics.kv_blocks_used = s.kvm->pool().n_used();
    }
    RequestUpdate u;
    u.finish = why;
    u.n_prompt_tokens = l.req.n_prompt;
    u.n_cached_tokens = std::max(0, l.req.n_cached_prompt);
    l.stream->push(std::move(u));
    --n_inflight_;
  };

  for (;;) {
    std::vector<std::unique_ptr<Live>> incoming;
    std::vector<uint64_t> aborts;
    bool stop;
    {
      std::unique_lock<std::mutex> lock(s.mu);
      s.cv.wait(lock, [&] {
        return s.stop || !s.incoming.empty() || !s.aborts.empty() || s.sched->has_work();
      });
      incoming.swap(s.incoming);
      aborts.swap(s.aborts);
      stop = s.stop;
    }
    for (auto& l : incoming) {
      s.sched->add(&l->req);
      const uint64_t id = l->req.id;
      s.live.emplace(id, std::move(l));
    }
    for (uint64_t id : aborts) {
      auto it = s.live.find(id);
      if (it == s.live.end()) continue;
      finish(*it->second, FinishReason::ABORT, RequestStatus::FINISHED_ABORTED);
      s.live.erase(it);
    }
    if (!aborts.empty()) {
      // An abort frees blocks outside a step; the engine may go idle right after, so the
      // gauges are refreshed here too, not only at the end of the next step.
      std::lock_guard<std::mutex> lock(s.metrics_mu);
      s.metrics.n_running = s.sched->n_running();
      s.metrics.n_waiting = s.sched->n_waiting();
      s.metrics.kv_blocks_used = s.kvm->pool().n_used();
    }
    if (stop) {
      for (auto& [id, l] : s.live) finish(*l, FinishReason::ABORT, RequestStatus::FINISHED_ABORTED);
      s.live.clear();
      return;
    }

    if (s.spec) {
      // Proposals for the sequences that decode this step (one verified token to compute).
      std::vector<Speculator::Candidate> cands;
      for (auto& [id, lp] : s.live) {
        Request& r = lp->req;
        if (r.status != RequestStatus::RUNNING || r.n_tokens() - r.n_computed != 1) continue;
        const int room =
            std::min(r.max_tokens - r.n_output() - 1, max_model_len_ - r.n_tokens() - 1);
        cands.push_back({&r, &lp->params.sampling, room});
      }
      s.spec->propose(cands, static_cast<int>(cands.size()));
    }
    SchedulerOutput out = s.sched->schedule();
    {
      // Queued = submitted but not running: still in `incoming` or waiting in the scheduler.
      std::lock_guard<std::mutex> lock(s.mu);
      s.n_queued = static_cast<int>(s.incoming.size()) + s.sched->n_waiting();
    }
    if (out.empty()) {
      // Nothing fits this step (cannot persist: the pool holds a max_model_len sequence,
      // and an idle engine frees everything). Yield instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }

    // Build the batch: tokens of every scheduled chunk, back to back.
    s.tokens.clear();
    s.pos.clear();
    s.seq_of.clear();
    s.slots.clear();
    s.prompt_tiled.clear();
    s.out_rows.clear();
    s.tables.clear();
    for (size_t i = 0; i < out.items.size(); ++i) {
      const ScheduledItem& it = out.items[i];
      const Request& r = *it.req;
      s.tables.push_back(r.blocks.data());
      const int n_real = r.n_tokens();  // positions past it hold proposals
      for (int p = it.start; p < it.start + it.n_new; ++p) {
        s.tokens.push_back(p < n_real ? r.tokens[p] : r.spec_tokens[p - n_real]);
        s.pos.push_back(p);
        s.seq_of.push_back(static_cast<int32_t>(i));
        s.slots.push_back(r.blocks[p / B] * B + p % B);
        s.prompt_tiled.push_back(p < r.n_prompt && r.n_prompt >= kTiledPromptMin);
      }
      // Logits of the last verified token and of each proposal (k + 1 rows).
      if (it.sample)
        for (int j = static_cast<int>(r.spec_tokens.size()); j >= 0; --j)
          s.out_rows.push_back(static_cast<int32_t>(s.tokens.size()) - 1 - j);
    }

    ForwardBatch fb;
    fb.n_tokens = static_cast<int>(s.tokens.size());
    fb.tokens = s.tokens.data();
    fb.pos = s.pos.data();
    fb.seq_of = s.seq_of.data();
    fb.slots = s.slots.data();
    fb.block_tables = s.tables.data();
    fb.prompt_tiled = s.prompt_tiled.data();
    fb.n_out = static_cast<int>(s.out_rows.size());
    fb.out_rows = s.out_rows.data();
    model_.forward(fb, *s.kv, s.logits.data());
    s.sched->step_done(out);

    // Tokens each sampled sequence emits this step: one, or with proposals the accepted
    // ones and a correction/bonus token (verify rejects the rest). Raw logit rows are kept
    // for logprobs (of the model's own distribution, before penalties/temperature).
    struct Emitted {
      Live* l;
      std::vector<int32_t> tokens;
      size_t raw;  // offset of the first raw row in s.scratch (logprobs only)
    };
    std::vector<Emitted> emitted;
    s.scratch.clear();
    {
      size_t row = 0;
      for (const ScheduledItem& it : out.items) {
        if (!it.sample) continue;
        Request& r = *it.req;
        Live& l = *s.live.at(r.id);
        const size_t n_rows = 1 + r.spec_tokens.size();
        float* lg = s.logits.data() + row * n_vocab;
        row += n_rows;
        Emitted e{&l, {}, s.scratch.size()};
        if (l.params.logprobs >= 0) s.scratch.insert(s.scratch.end(), lg, lg + n_rows * n_vocab);
        if (r.spec_tokens.empty())
          e.tokens.push_back(l.sampler.sample(lg, r.tokens));
        else
          e.tokens = s.spec->verify(r, l.sampler, lg, n_vocab);
        emitted.push_back(std::move(e));
      }
    }

    // Counters first: a client that has its last token may read /metrics at once, and
    // must find this step in them.
    {
      int64_t n_prompt_tokens = 0, n_generated = 0;
      for (const ScheduledItem& it : out.items) {
        const Request& r = *it.req;
        n_prompt_tokens += std::max(0, std::min(it.start + it.n_new, r.n_prompt) - it.start);
      }
      for (const Emitted& e : emitted) n_generated += static_cast<int64_t>(e.tokens.size());
      std::lock_guard<std::mutex> lock(s.metrics_mu);
      EngineMetrics& m = s.metrics;
      m.prefix_query_tokens = s.kvm->query_tokens();
      m.prefix_hit_tokens = s.kvm->hit_tokens();
      m.prompt_tokens_total += n_prompt_tokens;
      m.generation_tokens_total += n_generated;
      m.preemptions_total += static_cast<int64_t>(out.preempted.size());
      ++m.steps_total;
    }

    for (Emitted& e : emitted) {
      Live& l = *e.l;
      Request& r = l.req;
      RequestUpdate u;
      u.n_prompt_tokens = r.n_prompt;
      u.n_cached_tokens = std::max(0, r.n_cached_prompt);
      for (size_t j = 0; j < e.tokens.size() && u.finish == FinishReason::NONE; ++j) {
        GeneratedToken g;
        g.token = e.tokens[j];
        if (l.params.logprobs >= 0) {
          const float* lg = s.scratch.data() + e.raw + j * n_vocab;
          const float mx = *std::max_element(lg, lg + n_vocab);
          double sum = 0.0;
          for (int v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(lg[v] - mx));
          const float lse = mx + static_cast<float>(std::log(sum));
          const int k = l.params.logprobs;
          if (k > 0) {
            std::vector<int32_t> idx(n_vocab);
            for (int v = 0; v < n_vocab; ++v) idx[v] = v;
            std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
              return lg[a] > lg[b] || (lg[a] == lg[b] && a < b);
            });
            for (int i = 0; i < k; ++i) g.top.push_back({idx[i], lg[idx[i]] - lse});
          }
          g.logprob = lg[g.token] - lse;
          const float chosen = lg[g.token];
          g.rank = 1 + static_cast<int32_t>(
                           std::count_if(lg, lg + n_vocab, [&](float x) { return x > chosen; }));
        }
        r.tokens.push_back(g.token);
        const std::vector<int32_t>& stop_ids = l.params.stop_token_ids;
        const bool eog = (!l.params.ignore_eos && tok.is_eog(g.token)) ||
                         std::find(stop_ids.begin(), stop_ids.end(), g.token) != stop_ids.end();
        u.tokens.push_back(std::move(g));
        if (eog) {
          u.tokens.pop_back();  // the end-of-generation token is not part of the text
          u.finish = FinishReason::STOP;
        } else if (r.n_output() >= r.max_tokens || r.n_tokens() >= max_model_len_) {
          u.finish = FinishReason::LENGTH;
        }
      }
      if (u.finish == FinishReason::NONE) {
        if (!r.spec_tokens.empty()) Speculator::commit(*s.kvm, r);  // KV rollback
        l.stream->push(std::move(u));
        continue;
      }
      const FinishReason why = u.finish;
      u.finish = FinishReason::NONE;
      if (!u.tokens.empty()) l.stream->push(std::move(u));
      finish(l, why,
             why == FinishReason::STOP ? RequestStatus::FINISHED_STOPPED
                                       : RequestStatus::FINISHED_LENGTH);
      s.live.erase(r.id);
    }

    // Gauges after the finished requests have left.
    std::lock_guard<std::mutex> lock(s.metrics_mu);
    EngineMetrics& m = s.metrics;
    m.n_running = s.sched->n_running();
    m.n_waiting = s.sched->n_waiting();
    m.kv_blocks_used = s.kvm->pool().n_used();
  }
}

}  // namespace tessera
