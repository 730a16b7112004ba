// The embedding and scoring API, independent of the HTTP transport: each route takes the
// parsed JSON request body and returns the JSON response body, or throws ApiError (a 4xx
// with an OpenAI error body) / EngineBusy (429, 503).
//
//   POST /v1/embeddings  OpenAI: "input" a string, a list of strings, a list of token ids or
//                        a list of such lists; "encoding_format" float | base64;
//                        "dimensions" (Matryoshka: the first N values, renormalized);
//                        "truncate_prompt_tokens" (vLLM: -1 or k) / "truncate" (bool)
//   POST /v1/rerank      Jina / Cohere: "query", "documents" (strings or {"text": ...}),
//                        "top_n", "return_documents"; results sorted by relevance_score
//   POST /v1/score       vLLM: "text_1", "text_2" (1:1, 1:N or N:N pairs); "data" scores
//
// A cross-encoder (task SCORE) scores "[CLS] query [SEP] document [SEP]" (sigmoid of the
// logit unless the model says otherwise); an embedding model (task EMBED) scores the cosine
// of the two embeddings. Every input is tokenized and checked before any is queued, so a
// bad input fails its request alone with a message naming it.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "embed/batcher.h"
#include "server/api_error.h"

namespace tessera {

class EmbeddingRoutes {
 public:
  EmbeddingRoutes(EmbedBatcher& batcher, std::string served_model_name);

  nlohmann::json embeddings(const nlohmann::json& body);
  nlohmann::json rerank(const nlohmann::json& body);
  nlohmann::json score(const nlohmann::json& body);

  EmbedTask task() const { return settings_.task; }
  int max_model_len() const { return settings_.max_len; }
  int n_inflight() const { return batcher_.n_inflight(); }
  void stop_accepting() { batcher_.stop_accepting(); }
  const std::string& served_model_name() const { return served_name_; }

 private:
  struct Pair {
    const std::string* a;  // the query (text_1)
    const std::string* b;  // the document (text_2)
  };
  // Runs the inputs through the batcher; outputs in input order.
  std::vector<std::vector<float>> run(std::vector<EmbedInput> inputs);
  // The score of each pair (see the file comment); adds the tokens it ran to n_tokens.
  std::vector<float> pair_scores(const std::vector<Pair>& pairs, int limit, bool truncate,
                                 int64_t& n_tokens);
  void check_model(const nlohmann::json& body) const;

  EmbedBatcher& batcher_;
  const EmbeddingRunner& runner_;
  const EmbedSettings settings_;
  const Tokenizer& tok_;
  std::string served_name_;
};

// The 400 a generation route answers on an embedding / scoring server, and the reverse.
ApiError generation_not_served(EmbedTask task, const std::string& served_model_name);
ApiError embeddings_not_served(const std::string& route, const std::string& served_model_name);

// OpenAI's base64 encoding of an embedding: its float32 values, little-endian, in base64.
std::string embedding_base64(const std::vector<float>& v);

}  // namespace tessera
