#include "spec/ngram_proposer.h"

#include <algorithm>

namespace tessera {

std::vector<int32_t> NgramProposer::lookup(const std::vector<int32_t>& tokens, int ngram_min,
                                           int ngram_max, int k) {
  std::vector<int32_t> out;
  const int len = static_cast<int>(tokens.size());
  for (int n = std::min(ngram_max, len - 1); n >= ngram_min && n >= 1; --n) {
    const int32_t* suffix = tokens.data() + len - n;
    // Most recent earlier occurrence: start i with i + n <= len - 1 (a continuation exists).
    for (int i = len - n - 1; i >= 0; --i) {
      if (!std::equal(suffix, suffix + n, tokens.data() + i)) continue;
      // The continuation runs on past the end of the sequence into the proposal itself: a
      // match d tokens back proposes the last d tokens repeated (text that repeats itself),
      // the full k tokens either way.
      const int from = i + n;
      for (int m = 0; m < k; ++m)
        out.push_back(from + m < len ? tokens[from + m] : out[from + m - len]);
      return out;
    }
  }
  return out;
}

void NgramProposer::propose(std::vector<ProposalSlot>& slots) {
  for (ProposalSlot& s : slots) {
    s.tokens = lookup(s.req->tokens, min_, max_, s.k);
    s.q.clear();
  }
}

}  // namespace tessera
