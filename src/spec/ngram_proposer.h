// Prompt lookup: the last n tokens of a sequence (n from ngram_max down to ngram_min) are
// searched for earlier in the same sequence (prompt and generated text); the tokens that
// followed the most recent earlier occurrence are proposed. No model runs: it pays off
// when the output copies from the input (summaries, edits, code changes).
#pragma once
#include "spec/proposer.h"

namespace tessera {

class NgramProposer : public Proposer {
 public:
  NgramProposer(int ngram_min, int ngram_max) : min_(ngram_min), max_(ngram_max) {}
  const char* name() const override { return "ngram"; }
  void propose(std::vector<ProposalSlot>& slots) override;

  // The k tokens following the most recent earlier match of the last n (max..min) tokens
  // of `tokens`, continued periodically past the end; empty without a match.
  static std::vector<int32_t> lookup(const std::vector<int32_t>& tokens, int ngram_min,
                                     int ngram_max, int k);

 private:
  int min_, max_;
};

}  // namespace tessera
