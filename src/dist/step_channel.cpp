#include "dist/step_channel.h"

#include <string>

#include "core/error.h"
#include "dist/communicator.h"

namespace tessera::dist {

namespace {

constexpr int32_t kMagic = 0x50545354;  // "TSTP"
constexpr int kChunkHeader = 6;         // start, n_new, n_prompt, out_begin, out_end, n_blocks

class CommStepChannel final : public StepChannel {
 public:
  explicit CommStepChannel(Communicator& comm) : comm_(comm) {}

  void send(const StepMessage& m) override {
    std::vector<int32_t> w = m.serialize();
    int64_t n = static_cast<int64_t>(w.size());
    comm_.broadcast(&n, sizeof n, 0);
    comm_.broadcast(w.data(), n * static_cast<int64_t>(sizeof(int32_t)), 0);
  }

  StepMessage receive() override {
    int64_t n = 0;
    comm_.broadcast(&n, sizeof n, 0);
    if (n < 0 || n > (int64_t{1} << 28)) throw Error("step message of a bad length");
    words_.resize(static_cast<size_t>(n));
    comm_.broadcast(words_.data(), n * static_cast<int64_t>(sizeof(int32_t)), 0);
    return StepMessage::parse(words_.data(), words_.size());
  }

 private:
  Communicator& comm_;
  std::vector<int32_t> words_;
};

}  // namespace

std::vector<int32_t> StepMessage::serialize() const {
  std::vector<int32_t> w = {kMagic, static_cast<int32_t>(kind),
                            static_cast<int32_t>(kind == Kind::STEP ? chunks.size() : 0)};
  if (kind != Kind::STEP) return w;
  for (const StepChunk& c : chunks) {
    w.insert(w.end(), {c.start, c.n_new, c.n_prompt, c.out_begin, c.out_end,
                       static_cast<int32_t>(c.blocks.size())});
    w.insert(w.end(), c.tokens.begin(), c.tokens.end());
    w.insert(w.end(), c.blocks.begin(), c.blocks.end());
  }
  return w;
}

StepMessage StepMessage::parse(const int32_t* words, size_t n_words) {
  auto bad = [](const std::string& why) { return Error("malformed step message: " + why); };
  if (n_words < 3 || words[0] != kMagic) throw bad("no step header");
  StepMessage m;
  if (words[1] != static_cast<int32_t>(Kind::STEP) && words[1] != static_cast<int32_t>(Kind::STOP))
    throw bad("unknown kind " + std::to_string(words[1]));
  m.kind = static_cast<Kind>(words[1]);
  const int32_t n_chunks = words[2];
  if (n_chunks < 0 || (m.kind == Kind::STOP && n_chunks != 0)) throw bad("bad chunk count");
  size_t at = 3;
  for (int32_t i = 0; i < n_chunks; ++i) {
    if (n_words - at < kChunkHeader) throw bad("chunk " + std::to_string(i) + " is cut short");
    StepChunk c;
    c.start = words[at];
    c.n_new = words[at + 1];
    c.n_prompt = words[at + 2];
    c.out_begin = words[at + 3];
    c.out_end = words[at + 4];
    const int32_t n_blocks = words[at + 5];
    at += kChunkHeader;
    const int64_t end = int64_t{c.start} + c.n_new;
    if (c.start < 0 || c.n_new < 1 || end > INT32_MAX || c.n_prompt < 0 || n_blocks < 1)
      throw bad("chunk " + std::to_string(i) + " has a bad range or count");
    if (c.out_begin > c.out_end ||
        (c.out_begin < c.out_end && (c.out_begin < c.start || c.out_end > end)))
      throw bad("chunk " + std::to_string(i) + "'s logits range is outside its positions");
    if (n_words - at < static_cast<size_t>(c.n_new) + static_cast<size_t>(n_blocks))
      throw bad("chunk " + std::to_string(i) + "'s tokens or blocks are cut short");
    c.tokens.assign(words + at, words + at + c.n_new);
    at += static_cast<size_t>(c.n_new);
    c.blocks.assign(words + at, words + at + n_blocks);
    at += static_cast<size_t>(n_blocks);
    m.chunks.push_back(std::move(c));
  }
  if (at != n_words) throw bad("trailing words");
  return m;
}

std::unique_ptr<StepChannel> make_step_channel(Communicator& comm) {
  return std::make_unique<CommStepChannel>(comm);
}

}  // namespace tessera::dist
