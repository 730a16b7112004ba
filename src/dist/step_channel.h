// The step protocol of a distributed server. Rank 0 runs HTTP, tokenization, the scheduler
// and sampling; before each forward pass it tells the other ranks what the pass computes,
// so that every rank calls the model with the same batch, in step. The ranks answer
// nothing: the model's own collectives carry the activations, and every rank ends a pass
// with the same logits.
//
//   rank 0:  schedule -> send(STEP) -> forward -> sample -> ... -> send(STOP)
//   rank k:  receive -> forward -> receive -> forward -> ... -> STOP: return
//
// A STEP lists the batch's chunks. Chunk i is positions [start, start + n_new) of one
// sequence: their tokens, the sequence's prompt length (it decides the attention order),
// the block table entries covering positions [0, start + n_new), and the positions whose
// logits are wanted, [out_begin, out_end). Block ids are rank 0's; every rank's KV cache
// has the same number of blocks.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace tessera::dist {

class Communicator;

struct StepChunk {
  int32_t start = 0, n_new = 0;
  int32_t n_prompt = 0;
  int32_t out_begin = 0, out_end = 0;
  std::vector<int32_t> tokens;  // [n_new]: the tokens at positions start..start+n_new-1
  std::vector<int32_t> blocks;  // logical block -> physical block, from block 0
};

struct StepMessage {
  enum class Kind : int32_t { STEP = 1, STOP = 2 };
  Kind kind = Kind::STEP;
  std::vector<StepChunk> chunks;  // STEP only

  // Words: magic, kind, n_chunks, then per chunk start, n_new, n_prompt, out_begin,
  // out_end, n_blocks, tokens[n_new], blocks[n_blocks].
  std::vector<int32_t> serialize() const;
  // Throws tessera::Error when `words` is not a message serialize() could have written
  // (wrong magic or kind, counts that overrun the words, ranges out of order).
  static StepMessage parse(const int32_t* words, size_t n_words);
};

// Carries step messages from rank 0 to every other rank of a communicator.
class StepChannel {
 public:
  virtual ~StepChannel() = default;
  // Rank 0.
  virtual void send(const StepMessage& m) = 0;
  // Every other rank: waits for rank 0's next message (an idle server sends none for as
  // long as it has no requests).
  virtual StepMessage receive() = 0;
};

// Over comm's broadcast (a length, then the words): what a test's in-process ranks use.
std::unique_ptr<StepChannel> make_step_channel(Communicator& comm);

// The channel of this run's world communicator (collective: every rank calls it once).
// Under MPI, a waiting rank polls a non-blocking broadcast and sleeps between polls once
// it has waited a few milliseconds, so that the workers of an idle server use no CPU (a
// blocking MPI broadcast spins); elsewhere make_step_channel(comm).
std::unique_ptr<StepChannel> open_step_channel(Communicator& comm);

}  // namespace tessera::dist
