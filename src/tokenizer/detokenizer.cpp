#include "tokenizer/detokenizer.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace tessera {

namespace {
const std::string kEmpty;
}

Detokenizer::Detokenizer(const Tokenizer& tok, std::vector<std::string> stop, bool special)
    : tok_(tok), special_(special) {
  for (auto& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

const std::string& Detokenizer::matched_stop() const {
  return stop_index_ >= 0 ? stop_[stop_index_] : kEmpty;
}

size_t Detokenizer::held_stop_prefix() const {
  // Longest k < |stop| with pending_'s last k bytes == the stop string's first k bytes.
  size_t best = 0;
  for (const std::string& s : stop_) {
    const size_t max_k = std::min(s.size() - 1, pending_.size());
    for (size_t k = max_k; k > best; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        best = k;
        break;
      }
    }
  }
  return best;
}

std::string Detokenizer::feed(int32_t token) {
  if (stopped()) return {};
  ++n_tokens_;
  pending_ += tok_.token_to_piece(token, special_);

  // Invariant: before this call pending_ held no complete stop string (it would have
  // matched then), so any match now ends inside the new piece. Take the earliest start.
  size_t first = std::string::npos;
  for (size_t i = 0; i < stop_.size(); ++i) {
    const size_t pos = pending_.find(stop_[i]);
    if (pos != std::string::npos && (first == std::string::npos || pos < first)) {
      first = pos;
      stop_index_ = static_cast<int>(i);
    }
  }
  if (first != std::string::npos) {
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }

  const size_t n_final = utf8_complete_prefix(
      std::string_view(pending_).substr(0, pending_.size() - held_stop_prefix()));
  std::string out = pending_.substr(0, n_final);
  pending_.erase(0, n_final);
  return out;
}

std::string Detokenizer::flush() {
  if (stopped()) return {};
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace tessera
