// Progress of long work on stderr (model loading, conversion, perplexity, benchmarks):
//
//   perplexity [#######.............]  36%  4608/12800 tok  812 tok/s  ETA 0:10  chunk 9/25
//
// redrawn in place (\r) at most kRedrawHz times a second, and ended by a final line at
// 100% with the elapsed time. Nothing is drawn unless progress output is enabled for the
// process (set_progress_enabled: the CLI turns it on, --no-progress keeps it off; a library
// user gets none by default) and stderr is a terminal, so piped or logged output never
// holds progress lines. Work that ends before kFirstDrawDelay draws nothing at all.
//
// Thread safety: add / set / set_note may be called from any thread at once (workers of a
// parallel loop); one of them at a time draws, the others return at once. When inactive,
// every call is one test of a member flag.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace tessera {

// Process-wide switch; off until a program turns it on.
void set_progress_enabled(bool on);
// Enabled, and stderr is a terminal (TERM not "dumb").
bool progress_on_terminal();

class Progress {
 public:
  enum class Unit { kCount, kBytes };  // kBytes: shown in MiB / GiB, rate per second
  static constexpr int kRedrawHz = 10;
  static constexpr std::chrono::milliseconds kFirstDrawDelay{300};

  // `total` 0: unknown (no bar, percentage or ETA). `unit`: name of a counted item for
  // kCount ("tok", "chunks"); ignored for kBytes.
  Progress(std::string label, uint64_t total, std::string unit = "", Unit kind = Unit::kCount);
  // Clears a line left unfinished (an exception on its way out), so what follows starts on
  // a clean line.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool active() const { return active_; }
  void add(uint64_t n = 1);
  void set(uint64_t done);
  // Text after the ETA (e.g. the running perplexity); shown from the next redraw.
  void set_note(std::string note);
  // Writes a line to stderr (always, active or not), above the progress line if drawn.
  void println(std::string_view line);
  // The final line (when anything was drawn), at the current count.
  void finish();

  // The line for these figures (no \r, no escape codes), at most `width` columns. Public
  // for tests.
  struct Snapshot {
    uint64_t done = 0, total = 0;
    double seconds = 0;
    bool final = false;
  };
  std::string format(const Snapshot& s, int width) const;

 private:
  using Clock = std::chrono::steady_clock;
  void maybe_draw();
  void draw_locked(bool final);  // mu_ held

  const bool active_;
  std::string label_, unit_;
  Unit kind_;
  uint64_t total_;
  Clock::time_point t0_;
  std::atomic<uint64_t> done_{0};
  std::atomic<int64_t> next_draw_ns_;  // Clock ticks since t0_ of the next redraw
  std::mutex mu_;                      // drawing, note_, drawn_, finished_
  std::string note_;
  bool drawn_ = false, finished_ = false;
};

}  // namespace tessera
