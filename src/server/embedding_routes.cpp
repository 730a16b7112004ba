// The embedding and scoring routes. See embedding_routes.h.
#include "server/embedding_routes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <map>
#include <numeric>

#include "embed/tokenize_inputs.h"
#include "server/openai_format.h"  // new_response_id

namespace tessera {

using nlohmann::json;

namespace {

// How the request asks to treat inputs longer than the model takes: cut them to `limit`
// tokens, or refuse them.
struct Truncation {
  int limit;
  bool truncate;
};

Truncation parse_truncation(const json& body, int max_len) {
  if (body.contains("truncate_prompt_tokens") && !body["truncate_prompt_tokens"].is_null()) {
    const json& t = body["truncate_prompt_tokens"];
    const int64_t k = t.is_number_integer() ? t.get<int64_t>() : 0;
    if (k == -1) return {max_len, true};
    if (k < 1)
      throw ApiError::bad_param("truncate_prompt_tokens",
                                "'truncate_prompt_tokens' must be -1 (the model's maximum) or a "
                                "positive number of tokens");
    if (k > max_len)
      throw ApiError::bad_param("truncate_prompt_tokens",
                                "'truncate_prompt_tokens' (" + std::to_string(k) +
                                    ") is more than this model's maximum input of " +
                                    std::to_string(max_len) + " tokens");
    return {static_cast<int>(k), true};
  }
  if (body.contains("truncate") && !body["truncate"].is_null()) {
    if (!body["truncate"].is_boolean())
      throw ApiError::bad_param("truncate", "'truncate' must be a boolean");
    return {max_len, body["truncate"].get<bool>()};
  }
  return {max_len, false};
}

// A non-empty string field (a query or one document); `what` names it in messages.
const std::string& text_of(const json& v, const std::string& what, const std::string& param) {
  const json* t = &v;
  if (v.is_object() && v.contains("text")) t = &v["text"];  // Cohere's {"text": ...}
  if (!t->is_string()) throw ApiError::bad_param(param, "'" + what + "' must be a string");
  const std::string& s = t->get_ref<const std::string&>();
  if (s.empty()) throw ApiError::bad_param(param, "'" + what + "' is an empty string");
  return s;
}

int64_t count_tokens(const std::vector<EmbedInput>& inputs) {
  int64_t n = 0;
  for (const EmbedInput& in : inputs) n += static_cast<int64_t>(in.tokens.size());
  return n;
}

float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return static_cast<float>(dot / std::max(std::sqrt(na) * std::sqrt(nb), 1e-12));
}

}  // namespace

std::string embedding_base64(const std::vector<float>& v) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * sizeof(float), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], sizeof u);
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>((u >> (8 * b)) & 0xFF);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

ApiError generation_not_served(EmbedTask task, const std::string& served_model_name) {
  return ApiError(400,
                  "The model '" + served_model_name + "' is served for " +
                      (task == EmbedTask::EMBED ? "embeddings (POST /v1/embeddings)"
                                                : "scoring (POST /v1/rerank, /v1/score)") +
                      "; it does not generate text",
                  "model", "model_not_supported");
}

ApiError embeddings_not_served(const std::string& route, const std::string& served_model_name) {
  return ApiError(400,
                  "The model '" + served_model_name + "' is served for text generation, not " +
                      route +
                      "; start the server with --task embed to serve a decoder's hidden states "
                      "as embeddings, or serve an embedding or cross-encoder model",
                  "model", "model_not_supported");
}

EmbeddingRoutes::EmbeddingRoutes(EmbedBatcher& batcher, std::string served_model_name)
    : batcher_(batcher),
      runner_(batcher.runner()),
      settings_(runner_.settings()),
      tok_(runner_.model().tokenizer()),
      served_name_(std::move(served_model_name)) {}

void EmbeddingRoutes::check_model(const json& body) const {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (!body.contains("model") || body["model"].is_null()) return;
  if (!body["model"].is_string()) throw ApiError::bad_param("model", "'model' must be a string");
  const std::string& m = body["model"].get_ref<const std::string&>();
  if (m != served_name_)
    throw ApiError(
        404, "The model '" + m + "' does not exist; this server serves '" + served_name_ + "'.",
        "model", "model_not_found");
}

std::vector<std::vector<float>> EmbeddingRoutes::run(std::vector<EmbedInput> inputs) {
  const int limit = batcher_.max_waiting_inputs();
  if (static_cast<int64_t>(inputs.size()) > limit)
    throw ApiError(400,
                   "the request has " + std::to_string(inputs.size()) +
                       " inputs; this server takes at most " + std::to_string(limit) +
                       " per request",
                   "input", "too_many_inputs");
  std::shared_ptr<EmbedJob> job = batcher_.submit(std::move(inputs));
  while (!job->wait(std::chrono::milliseconds(100))) {
  }
  if (!job->error().empty()) throw ApiError(500, job->error());
  return job->outputs();
}

json EmbeddingRoutes::embeddings(const json& body) {
  check_model(body);
  if (settings_.task != EmbedTask::EMBED)
    throw ApiError(400,
                   "The model '" + served_name_ +
                       "' is a cross-encoder: it scores pairs (POST /v1/rerank, /v1/score) and "
                       "does not produce embeddings",
                   "model", "model_not_supported");
  if (!body.contains("input")) throw ApiError::bad_param("input", "'input' is required");
  const Truncation tr = parse_truncation(body, settings_.max_len);
  std::string format = "float";
  if (body.contains("encoding_format") && !body["encoding_format"].is_null()) {
    const json& f = body["encoding_format"];
    format = f.is_string() ? f.get<std::string>() : "";
    if (format != "float" && format != "base64")
      throw ApiError::bad_param("encoding_format", "'encoding_format' must be 'float' or 'base64'");
  }
  int dims = 0;
  if (body.contains("dimensions") && !body["dimensions"].is_null()) {
    const json& d = body["dimensions"];
    const int n_embd = runner_.dim();
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > n_embd)
      throw ApiError::bad_param("dimensions", "'dimensions' must be an integer from 1 to " +
                                                  std::to_string(n_embd) +
                                                  " (this model's embedding size)");
    dims = static_cast<int>(d.get<int64_t>());
  }

  // "input": a string, a list of token ids, or a list of strings / token-id lists.
  const json& input = body["input"];
  std::vector<const json*> items;
  if (input.is_string()) {
    items.push_back(&input);
  } else if (input.is_array() && !input.empty() && input[0].is_number_integer()) {
    items.push_back(&input);  // one token-id list
  } else if (input.is_array()) {
    for (const json& x : input) items.push_back(&x);
  } else {
    throw ApiError::bad_param("input",
                              "'input' must be a string, a list of strings, a list of token "
                              "ids, or a list of token-id lists");
  }
  if (items.empty()) throw ApiError::bad_param("input", "'input' must not be an empty list");
  if (static_cast<int64_t>(items.size()) > batcher_.max_waiting_inputs())
    throw ApiError(400,
                   "'input' has " + std::to_string(items.size()) +
                       " items; this server takes at most " +
                       std::to_string(batcher_.max_waiting_inputs()) + " per request",
                   "input", "too_many_inputs");
  std::vector<EmbedInput> inputs;
  inputs.reserve(items.size());
  const int32_t n_vocab = tok_.n_vocab();
  for (size_t i = 0; i < items.size(); ++i) {
    const json& it = *items[i];
    const std::string where = items.size() == 1 && &it == &input
                                  ? std::string("input")
                                  : "input[" + std::to_string(i) + "]";
    try {
      if (it.is_string()) {
        const std::string& s = it.get_ref<const std::string&>();
        if (s.empty()) throw ApiError::bad_param("input", where + " is an empty string");
        inputs.push_back(tokenize_text(tok_, s, tr.limit, tr.truncate));
      } else if (it.is_array()) {
        EmbedInput in;
        for (const json& t : it) {
          if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
            throw ApiError::bad_param(
                "input", where + " must hold token ids in [0, " + std::to_string(n_vocab) + ")");
          in.tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
        }
        if (in.tokens.empty()) throw ApiError::bad_param("input", where + " is an empty list");
        if (static_cast<int>(in.tokens.size()) > tr.limit) {
          if (!tr.truncate)
            throw Error("it has " + std::to_string(in.tokens.size()) +
                        " tokens, more than the maximum of " + std::to_string(tr.limit) +
                        " (ask for truncation to cut it)");
          in.tokens.resize(tr.limit);
        }
        inputs.push_back(std::move(in));
      } else {
        throw ApiError::bad_param("input", where +
                                               " must be a string or a list of token ids, not a " +
                                               std::string(it.type_name()));
      }
      runner_.check(inputs.back());
    } catch (const ApiError&) {
      throw;
    } catch (const Error& e) {
      throw ApiError(400, where + ": " + e.what(), "input");
    }
  }
  const int64_t n_tokens = count_tokens(inputs);
  std::vector<std::vector<float>> out = run(std::move(inputs));
  json data = json::array();
  for (size_t i = 0; i < out.size(); ++i) {
    finish_embedding(out[i], dims, settings_.normalize);
    json e = {{"object", "embedding"}, {"index", i}};
    if (format == "base64")
      e["embedding"] = embedding_base64(out[i]);
    else
      e["embedding"] = out[i];
    data.push_back(std::move(e));
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", served_name_},
          {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}};
}

std::vector<float> EmbeddingRoutes::pair_scores(const std::vector<Pair>& pairs, int limit,
                                                bool truncate, int64_t& n_tokens) {
  std::vector<EmbedInput> inputs;
  std::vector<float> scores;
  if (settings_.task == EmbedTask::SCORE) {
    if (runner_.dim() != 1)
      throw ApiError(400,
                     "The model '" + served_name_ + "' is a classifier of " +
                         std::to_string(runner_.dim()) +
                         " labels; relevance scores need a one-label cross-encoder",
                     "model", "model_not_supported");
    for (size_t i = 0; i < pairs.size(); ++i) {
      try {
        inputs.push_back(tokenize_pair(tok_, *pairs[i].a, *pairs[i].b, limit, truncate));
        runner_.check(inputs.back());
      } catch (const Error& e) {
        throw ApiError(400, "pair " + std::to_string(i) + ": " + e.what());
      }
    }
    n_tokens += count_tokens(inputs);
    for (const std::vector<float>& logits : run(std::move(inputs)))
      scores.push_back(settings_.sigmoid ? sigmoid(logits[0]) : logits[0]);
    return scores;
  }
  // An embedding model: each distinct text once, then the cosine of each pair.
  std::map<const std::string*, size_t> index;
  for (const Pair& p : pairs)
    for (const std::string* s : {p.a, p.b}) {
      if (index.contains(s)) continue;
      try {
        inputs.push_back(tokenize_text(tok_, *s, limit, truncate));
        runner_.check(inputs.back());
      } catch (const Error& e) {
        throw ApiError(400, "text " + std::to_string(index.size()) + ": " + e.what());
      }
      index.emplace(s, index.size());
    }
  n_tokens += count_tokens(inputs);
  const std::vector<std::vector<float>> emb = run(std::move(inputs));
  for (const Pair& p : pairs) scores.push_back(cosine(emb[index.at(p.a)], emb[index.at(p.b)]));
  return scores;
}

json EmbeddingRoutes::rerank(const json& body) {
  check_model(body);
  if (!body.contains("query")) throw ApiError::bad_param("query", "'query' is required");
  const std::string& query = text_of(body["query"], "query", "query");
  if (!body.contains("documents") || !body["documents"].is_array() || body["documents"].empty())
    throw ApiError::bad_param("documents", "'documents' must be a non-empty list of strings");
  const json& docs = body["documents"];
  std::vector<Pair> pairs;
  for (size_t i = 0; i < docs.size(); ++i)
    pairs.push_back(
        {&query, &text_of(docs[i], "documents[" + std::to_string(i) + "]", "documents")});
  int64_t top_n = static_cast<int64_t>(docs.size());
  if (body.contains("top_n") && !body["top_n"].is_null()) {
    if (!body["top_n"].is_number_integer() || body["top_n"].get<int64_t>() < 0)
      throw ApiError::bad_param("top_n", "'top_n' must be a non-negative integer");
    if (body["top_n"].get<int64_t>() > 0)
      top_n = std::min<int64_t>(top_n, body["top_n"].get<int64_t>());
  }
  bool return_documents = true;
  if (body.contains("return_documents") && !body["return_documents"].is_null()) {
    if (!body["return_documents"].is_boolean())
      throw ApiError::bad_param("return_documents", "'return_documents' must be a boolean");
    return_documents = body["return_documents"].get<bool>();
  }
  const Truncation tr = parse_truncation(body, settings_.max_len);
  int64_t n_tokens = 0;
  const std::vector<float> scores = pair_scores(pairs, tr.limit, tr.truncate, n_tokens);

  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  json results = json::array();
  for (int64_t r = 0; r < top_n; ++r) {
    const size_t i = order[r];
    json item = {{"index", i}, {"relevance_score", scores[i]}};
    if (return_documents) item["document"] = {{"text", *pairs[i].b}};
    results.push_back(std::move(item));
  }
  return {{"id", new_response_id("rerank")},
          {"model", served_name_},
          {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}},
          {"results", std::move(results)}};
}

json EmbeddingRoutes::score(const json& body) {
  check_model(body);
  // text_1 / text_2: a string or a non-empty list of strings each.
  auto texts = [&](const char* key) {
    std::vector<const std::string*> v;
    if (!body.contains(key))
      throw ApiError::bad_param(key, std::string("'") + key + "' is required");
    const json& t = body[key];
    if (t.is_array()) {
      if (t.empty()) throw ApiError::bad_param(key, std::string("'") + key + "' is an empty list");
      for (size_t i = 0; i < t.size(); ++i)
        v.push_back(&text_of(t[i], std::string(key) + "[" + std::to_string(i) + "]", key));
    } else {
      v.push_back(&text_of(t, key, key));
    }
    return v;
  };
  const std::vector<const std::string*> a = texts("text_1"), b = texts("text_2");
  std::vector<Pair> pairs;
  if (a.size() == 1) {
    for (const std::string* s : b) pairs.push_back({a[0], s});
  } else if (a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) pairs.push_back({a[i], b[i]});
  } else {
    throw ApiError::bad_param("text_2",
                              "'text_1' and 'text_2' must be lists of the same length (or "
                              "'text_1' a single text)");
  }
  const Truncation tr = parse_truncation(body, settings_.max_len);
  int64_t n_tokens = 0;
  const std::vector<float> scores = pair_scores(pairs, tr.limit, tr.truncate, n_tokens);
  json data = json::array();
  for (size_t i = 0; i < scores.size(); ++i)
    data.push_back({{"index", i}, {"object", "score"}, {"score", scores[i]}});
  return {{"id", new_response_id("score")},
          {"object", "list"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", served_name_},
          {"data", std::move(data)},
          {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}};
}

}  // namespace tessera
