// tessera embed: one JSON array per input line — the line's embedding, or, with a
// cross-encoder, the score of "query<TAB>document".
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "core/error.h"
#include "embed/batcher.h"
#include "embed/tokenize_inputs.h"
#include "models/model.h"

namespace tessera::cli {

namespace {

struct EmbedCliOptions {
  std::string model, file;
  std::vector<std::string> prompts;
  bool truncate = false;
  int dimensions = 0;
  int n_threads = 0;
  ModelOptions load;
  EmbedOptions embed;
};

// Lines of `text`; a final newline does not start another line.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

int run_embed(const EmbedCliOptions& o) {
  std::vector<std::string> lines = o.file.empty() ? o.prompts : split_lines(read_file(o.file));
  if (lines.empty()) throw Error("no input: give -f FILE (one input a line) or -p TEXT");
  ModelOptions mo = o.load;
  mo.n_threads = o.n_threads;
  auto model = load_model(o.model, mo);
  std::optional<EmbedTask> t = embedding_task(*model, o.embed.task);
  if (!t) t = EmbedTask::EMBED;  // a decoder: `tessera embed` means --task embed
  const EmbedSettings s = resolve_embed_settings(*model, *t, o.embed);
  if (o.dimensions > model->config().n_embd)
    throw Error("--dimensions " + std::to_string(o.dimensions) + " is more than the model's " +
                std::to_string(model->config().n_embd));
  EmbeddingRunner runner(*model, s);

  const Tokenizer& tok = model->tokenizer();
  std::vector<EmbedInput> inputs;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where =
        o.file.empty() ? "input " + std::to_string(i + 1) : o.file + ":" + std::to_string(i + 1);
    try {
      if (lines[i].empty()) throw Error("the input is empty");
      if (s.task == EmbedTask::SCORE) {
        const size_t tab = lines[i].find('\t');
        if (tab == std::string::npos)
          throw Error("a cross-encoder takes 'query<TAB>document' lines");
        inputs.push_back(tokenize_pair(tok, std::string_view(lines[i]).substr(0, tab),
                                       std::string_view(lines[i]).substr(tab + 1), s.max_len,
                                       o.truncate));
      } else {
        inputs.push_back(tokenize_text(tok, lines[i], s.max_len, o.truncate));
      }
      runner.check(inputs.back());
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
  EmbedBatcher batcher(runner, static_cast<int>(inputs.size()));
  auto job = batcher.submit(std::move(inputs));
  while (!job->wait(std::chrono::seconds(1))) {
  }
  if (!job->error().empty()) throw Error(job->error());
  for (std::vector<float> v : job->outputs()) {
    if (s.task == EmbedTask::SCORE) {
      if (s.sigmoid && v.size() == 1) v[0] = 1.0f / (1.0f + std::exp(-v[0]));
    } else {
      finish_embedding(v, o.dimensions, s.normalize);
    }
    std::puts(nlohmann::json(v).dump().c_str());
  }
  return 0;
}

}  // namespace

Runner add_embed(CLI::App& app) {
  auto o = std::make_shared<EmbedCliOptions>();
  app.add_option("-m,--model", o->model, "model: GGUF file or Hugging Face directory")->required();
  auto* f = app.add_option("-f,--file", o->file, "inputs, one a line");
  auto* p = app.add_option("-p,--prompt", o->prompts, "an input (repeatable)");
  f->excludes(p);
  app.add_flag("--truncate", o->truncate,
               "cut inputs longer than the model's maximum (default: refuse them)");
  app.add_option("--dimensions", o->dimensions,
                 "keep the first N dimensions (Matryoshka), then normalize")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", o->n_threads, "compute threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--max-model-len", o->embed.max_model_len,
                 "longest input in tokens (default: the model's)")
      ->check(CLI::Range(1, 1 << 24));
  add_model_load_options(app, o->load);
  add_embed_options(app, o->embed, /*serve=*/false);
  return [o] { return run_embed(*o); };
}

}  // namespace tessera::cli
