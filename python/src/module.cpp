// tessera._core: the nanobind module under the `tessera` Python package. It converts
// between Python values and llm_core's C++ types, releases the GIL while the engine works,
// and turns C++ exceptions into Python ones:
//   tessera::Error (bad input: a file, an option, a prompt, a sampling field) -> ValueError
//   EngineBusy (the engine refused more work)                                 -> RuntimeError
//   an unknown LLM() option                                                   -> TypeError
// The vLLM-shaped result objects are built in Python (tessera/outputs.py) from the tuples
// returned here.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <chrono>

#include "core/error.h"
#include "embed/batcher.h"
#include "llm_core.h"
#include "py_json.h"
#include "server/api_error.h"
#include "tokenizer/tokenizer.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace tessera::python {

namespace {

// How long a wait holds the GIL released before Ctrl-C is looked at again.
constexpr std::chrono::milliseconds kSignalPoll(50);

// Model text may end inside a UTF-8 sequence (byte tokens); Python gets U+FFFD there.
nb::str utf8(const std::string& s) {
  return nb::steal<nb::str>(
      PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

nb::object id_or_none(int32_t id) {
  return id >= 0 ? nb::object(nb::int_(id)) : nb::object(nb::none());
}

// The logprobs of `tokens`, for a choice that asked for them: per token a list of
// (token id, logprob, rank, decoded text), the chosen token first, then the top k.
nb::list logprob_entries(const Tokenizer& tok, const std::vector<GeneratedToken>& tokens) {
  nb::list out;
  for (const GeneratedToken& t : tokens) {
    nb::list entries;
    entries.append(nb::make_tuple(t.token, t.logprob, t.rank, utf8(tok.token_to_piece(t.token))));
    for (size_t k = 0; k < t.top.size(); ++k)
      entries.append(nb::make_tuple(t.top[k].token, t.top[k].logprob, static_cast<int>(k + 1),
                                    utf8(tok.token_to_piece(t.top[k].token))));
    out.append(std::move(entries));
  }
  return out;
}

std::vector<int32_t> token_ids(const std::vector<GeneratedToken>& tokens) {
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (const GeneratedToken& t : tokens) ids.push_back(t.token);
  return ids;
}

nb::object finish_name(RequestStatus r) {
  return !is_finished(r) ? nb::none() : nb::object(nb::str(finish_reason_text(r)));
}

// Runs the engine with the GIL released for at most kSignalPoll, then checks for Ctrl-C
// with the GIL held: a pending KeyboardInterrupt aborts the job and propagates.
bool poll_interruptibly(GenerateJob& job, std::vector<JobDelta>& out,
                        std::chrono::milliseconds timeout) {
  bool any;
  {
    nb::gil_scoped_release unlocked;
    any = job.poll(out, std::min(timeout, kSignalPoll));
  }
  if (PyErr_CheckSignals() != 0) {
    job.abort();
    throw nb::python_error();
  }
  return any;
}

class PyJob {
 public:
  PyJob(LLMCore& core, std::unique_ptr<GenerateJob> job) : core_(core), job_(std::move(job)) {}

  // Every prompt's choices to the end: [[(index, text, token_ids, finish_reason,
  // logprobs | None), ...] per prompt].
  nb::list wait() {
    struct Acc {
      std::string text;
      std::vector<GeneratedToken> tokens;
      RequestStatus finish = RequestStatus::RUNNING;
    };
    std::vector<std::vector<Acc>> acc(job_->n_prompts());
    for (int i = 0; i < job_->n_prompts(); ++i) acc[i].resize(job_->prompt(i).params.n);
    std::vector<JobDelta> deltas;
    while (!job_->finished()) {
      deltas.clear();
      poll_interruptibly(*job_, deltas, kSignalPoll);
      for (JobDelta& d : deltas) {
        Acc& a = acc[d.prompt][d.choice.index];
        a.text += d.choice.text;
        for (GeneratedToken& t : d.choice.tokens) a.tokens.push_back(std::move(t));
        if (is_finished(d.choice.finish)) a.finish = d.choice.finish;
      }
    }
    const Tokenizer& tok = core_.tokenizer();
    nb::list out;
    for (int i = 0; i < job_->n_prompts(); ++i) {
      const bool logprobs = job_->prompt(i).params.logprobs;
      nb::list choices;
      for (size_t j = 0; j < acc[i].size(); ++j) {
        const Acc& a = acc[i][j];
        choices.append(nb::make_tuple(
            static_cast<int>(j), utf8(a.text), token_ids(a.tokens), finish_name(a.finish),
            logprobs ? nb::object(logprob_entries(tok, a.tokens)) : nb::none()));
      }
      out.append(std::move(choices));
    }
    return out;
  }

  // News within `timeout_s` seconds: [(prompt, index, text, token_ids, finish_reason | None,
  // logprobs | None), ...]; empty when nothing happened in time.
  nb::list poll(double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
    std::vector<JobDelta> deltas;
    while (!job_->finished()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (poll_interruptibly(*job_, deltas, std::max(left, std::chrono::milliseconds(0))) ||
          left.count() <= 0)
        break;
    }
    const Tokenizer& tok = core_.tokenizer();
    nb::list out;
    for (const JobDelta& d : deltas) {
      const bool logprobs = job_->prompt(d.prompt).params.logprobs;
      out.append(nb::make_tuple(
          d.prompt, d.choice.index, utf8(d.choice.text), token_ids(d.choice.tokens),
          finish_name(d.choice.finish),
          logprobs ? nb::object(logprob_entries(tok, d.choice.tokens)) : nb::none()));
    }
    return out;
  }

  bool finished() const { return job_->finished(); }
  int n_prompts() const { return job_->n_prompts(); }
  std::vector<int32_t> prompt_token_ids(int i) const { return job_->prompt(check(i)).ids; }
  int num_cached_tokens(int i) const { return job_->n_cached_tokens(check(i)); }
  void abort() { job_->abort(); }

 private:
  int check(int i) const {
    if (i < 0 || i >= job_->n_prompts()) throw nb::index_error("prompt index out of range");
    return i;
  }
  LLMCore& core_;
  std::unique_ptr<GenerateJob> job_;
};

std::unique_ptr<LLMCore> make_core(const std::string& path, const nb::dict& options) {
  LLMOptions o = default_llm_options();
  for (auto [k, v] : options) {
    const std::string name = nb::cast<std::string>(nb::str(k));
    const LLMOptionSpec* spec = find_llm_option(name);
    if (!spec) {
      std::string known;
      for (const LLMOptionSpec& s : llm_option_specs())
        known += (known.empty() ? "" : ", ") + std::string(s.name);
      throw nb::type_error(("LLM() got an unexpected keyword argument '" + name +
                            "' (engine options: " + known + ")")
                               .c_str());
    }
    if (!v.is_none()) spec->apply(o, to_json(v, name));
  }
  nb::gil_scoped_release unlocked;  // loading may take a while; no Python object is used
  return std::make_unique<LLMCore>(path, o);
}

// Prompt i's token ids (Python ints, so any 64-bit value) checked against the vocabulary.
std::vector<int32_t> vocab_ids(const LLMCore& core, const std::vector<int64_t>& ids, size_t i) {
  const int32_t n_vocab = core.tokenizer().n_vocab();
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (int64_t t : ids) {
    if (t < 0 || t >= n_vocab)
      throw Error("prompt " + std::to_string(i) + ": token id " + std::to_string(t) +
                  " is outside the vocabulary (0.." + std::to_string(n_vocab - 1) + ")");
    out.push_back(static_cast<int32_t>(t));
  }
  return out;
}

std::unique_ptr<PyJob> start(LLMCore& core, const std::vector<std::vector<int64_t>>& prompts,
                             const nb::list& params) {
  if (nb::len(params) != prompts.size())
    throw nb::value_error("one sampling-parameter set per prompt is needed");
  std::vector<JobPrompt> jobs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    jobs[i].ids = vocab_ids(core, prompts[i], i);
    jobs[i].params = core.sampling(to_json(params[i], ""));
  }
  return std::make_unique<PyJob>(core, std::make_unique<GenerateJob>(core, std::move(jobs)));
}

// Embeddings of the inputs, finished as /v1/embeddings finishes them (Matryoshka cut to
// `dimensions` when > 0, then normalized when the model's settings say so):
// [(prompt_token_ids, embedding)].
nb::list embed(LLMCore& core, const std::vector<std::string>& texts,
               const std::vector<int>& is_text, const std::vector<std::vector<int64_t>>& ids,
               bool truncate, int dimensions) {
  std::vector<std::vector<int32_t>> ids32(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ids32[i] = vocab_ids(core, ids[i], i);
  const EmbeddingRunner& runner = core.embedder().runner();
  if (dimensions < 0 || dimensions > runner.dim())
    throw Error("dimensions: must be in [1, " + std::to_string(runner.dim()) + "], got " +
                std::to_string(dimensions));
  if (texts.size() != ids.size() || is_text.size() != ids.size())
    throw nb::value_error("texts, is_text and ids must have one entry per input");
  std::vector<EmbedInput> inputs = core.embed_inputs(
      texts, std::vector<bool>(is_text.begin(), is_text.end()), std::move(ids32), truncate);
  std::vector<std::vector<int32_t>> prompt_ids;
  for (const EmbedInput& in : inputs) prompt_ids.push_back(in.tokens);
  std::shared_ptr<EmbedJob> job;
  if (!inputs.empty()) job = core.embedder().submit(std::move(inputs));
  for (bool done = !job; !done;) {
    {
      nb::gil_scoped_release unlocked;
      done = job->wait(kSignalPoll);
    }
    // Ctrl-C stops the wait; the batch in flight finishes on its own and is dropped.
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
  }
  if (job && !job->error().empty()) throw Error(job->error());
  nb::list out;
  for (size_t i = 0; i < prompt_ids.size(); ++i) {
    std::vector<float> v = job->outputs()[i];
    finish_embedding(v, dimensions, runner.settings().normalize);
    out.append(nb::make_tuple(prompt_ids[i], v));
  }
  return out;
}

nb::dict engine_metrics(const LLMCore& core) {
  if (!core.generates()) {
    const EmbedBatcherStats st = core.embedder().stats();
    nb::dict d;
    d["requests_finished"] = st.requests;
    d["inputs_total"] = st.inputs;
    d["prompt_tokens_total"] = st.tokens;
    d["batches_total"] = st.batches;
    d["num_waiting"] = st.waiting_inputs;
    return d;
  }
  const EngineMetrics m = core.engine().metrics();
  nb::dict d;
  d["num_running"] = m.n_running;
  d["num_waiting"] = m.n_waiting;
  d["kv_blocks_used"] = m.kv_blocks_used;
  d["kv_blocks_total"] = m.kv_blocks_total;
  d["block_size"] = m.block_size;
  d["prefix_cache_query_tokens"] = m.prefix_query_tokens;
  d["prefix_cache_hit_tokens"] = m.prefix_hit_tokens;
  d["prompt_tokens_total"] = m.prompt_tokens_total;
  d["generation_tokens_total"] = m.generation_tokens_total;
  d["requests_finished"] = m.requests_finished;
  d["preemptions_total"] = m.preemptions_total;
  d["steps_total"] = m.steps_total;
  return d;
}

}  // namespace

}  // namespace tessera::python

NB_MODULE(_core, m) {
  using namespace tessera;
  using namespace tessera::python;
  m.doc() = "Tessera's engine for the tessera package (use tessera.LLM, not this module).";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const EngineBusy& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const ApiError& e) {
      // The server's validators name the field in `param`; the message says it too unless
      // it is about a part of the field ("messages[2].role").
      std::string msg = e.what();
      if (!e.param.empty() && msg.find("'" + e.param + "'") == std::string::npos)
        msg = e.param + ": " + msg;
      PyErr_SetString(PyExc_ValueError, msg.c_str());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  nb::class_<PyJob>(m, "Job", "One generate() or stream() call running in the engine.")
      .def("wait", &PyJob::wait,
           "Waits for every choice to finish (Ctrl-C aborts them and raises "
           "KeyboardInterrupt); returns each prompt's choices.")
      .def("poll", &PyJob::poll, "timeout"_a,
           "The choices' news within `timeout` seconds (empty when none).")
      .def_prop_ro("finished", &PyJob::finished)
      .def_prop_ro("num_prompts", &PyJob::n_prompts)
      .def("prompt_token_ids", &PyJob::prompt_token_ids, "i"_a)
      .def("num_cached_tokens", &PyJob::num_cached_tokens, "i"_a)
      .def("abort", &PyJob::abort, "Stops every choice still running.");

  nb::class_<LLMCore>(m, "LLMCore", "A loaded model and its engine.")
      .def(nb::new_(&make_core), "path"_a, "options"_a)
      .def_prop_ro("max_model_len",
                   [](const LLMCore& c) {
                     return c.generates() ? c.engine().max_model_len()
                                          : c.embedder().runner().settings().max_len;
                   })
      .def_prop_ro("task", [](const LLMCore& c) { return c.generates() ? "generate" : "embed"; })
      .def_prop_ro("embedding_dim", [](const LLMCore& c) { return c.embedder().runner().dim(); })
      .def_prop_ro("vocab_size", [](const LLMCore& c) { return c.tokenizer().n_vocab(); })
      .def_prop_ro(
          "bos_token_id", [](const LLMCore& c) { return id_or_none(c.tokenizer().bos_id()); },
          nb::for_getter(nb::sig("def bos_token_id(self, /) -> int | None")))
      .def_prop_ro(
          "eos_token_id", [](const LLMCore& c) { return id_or_none(c.tokenizer().eos_id()); },
          nb::for_getter(nb::sig("def eos_token_id(self, /) -> int | None")))
      .def(
          "encode",
          [](const LLMCore& c, const std::string& text, bool add_special) {
            return c.tokenizer().encode(text, add_special, /*parse_special=*/true);
          },
          "text"_a, "add_special_tokens"_a)
      .def(
          "decode",
          [](const LLMCore& c, const std::vector<int64_t>& ids, bool skip_special) {
            const Tokenizer& tok = c.tokenizer();
            std::vector<int32_t> v;
            for (int64_t t : ids) {
              if (t < 0 || t >= tok.n_vocab())
                throw Error("token id " + std::to_string(t) + " is outside the vocabulary (0.." +
                            std::to_string(tok.n_vocab() - 1) + ")");
              v.push_back(static_cast<int32_t>(t));
            }
            return utf8(tok.decode(v, /*special=*/!skip_special));
          },
          "ids"_a, "skip_special_tokens"_a)
      .def("prompt_tokens", &LLMCore::prompt_tokens, "text"_a)
      .def(
          "chat_prompt",
          [](const LLMCore& c, nb::handle fields, const std::string& chat_template) {
            const ChatPrompt p = c.chat_prompt(to_json(fields, ""), chat_template);
            return nb::make_tuple(utf8(p.text), p.ids);
          },
          "fields"_a, "chat_template"_a,
          "Renders and tokenizes a conversation: fields are the chat request's messages, "
          "tools, chat_template_kwargs, documents and add_generation_prompt.")
      .def("start", &start, "prompts"_a, "params"_a, nb::keep_alive<0, 1>(),
           "Submits token-id prompts, each with its sampling fields (server names).")
      .def("embed", &embed, "texts"_a, "is_text"_a, "ids"_a, "truncate"_a, "dimensions"_a,
           "Embeddings of text or token-id inputs (an embedding model only).")
      .def("metrics", &engine_metrics);

  m.def(
      "check_sampling_params",
      [](nb::handle fields) {
        // Token ids are checked against the model's vocabulary when a model runs them.
        parse_completion_options(to_json(fields, ""), std::numeric_limits<int32_t>::max());
      },
      "fields"_a, "Raises ValueError naming the field when a sampling field is out of range.");
  m.def(
      "engine_options",
      [] {
        nb::dict d;
        for (const LLMOptionSpec& s : llm_option_specs())
          d[s.name] = nb::make_tuple(s.type, s.help);
        return d;
      },
      "The keyword options of LLM(): name -> (type, description).");
}
