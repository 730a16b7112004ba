#include "core/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tessera {

namespace {

std::atomic<bool> g_enabled{false};

int terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// 0:42, 12:05, 1:02:03
std::string clock_text(double seconds) {
  const long s = seconds > 0 && seconds < 360000 ? static_cast<long>(seconds + 0.5) : 0;
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// Three significant digits or so: 0.812, 8.12, 81.2, 812, 8120.
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  return buf;
}

void write_stderr(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void set_progress_enabled(bool on) {
  g_enabled.store(on, std::memory_order_relaxed);
}

bool progress_on_terminal() {
  if (!g_enabled.load(std::memory_order_relaxed) || !isatty(STDERR_FILENO)) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

Progress::Progress(std::string label, uint64_t total, std::string unit, Unit kind)
    : active_(progress_on_terminal()),
      label_(std::move(label)),
      unit_(std::move(unit)),
      kind_(kind),
      total_(total),
      t0_(Clock::now()),
      next_draw_ns_(std::chrono::nanoseconds(kFirstDrawDelay).count()) {}

Progress::~Progress() {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (drawn_ && !finished_) write_stderr("\r\x1b[K");
}

void Progress::add(uint64_t n) {
  if (!active_) return;
  done_.fetch_add(n, std::memory_order_relaxed);
  maybe_draw();
}

void Progress::set(uint64_t done) {
  if (!active_) return;
  done_.store(done, std::memory_order_relaxed);
  maybe_draw();
}

void Progress::set_note(std::string note) {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(mu_);
  note_ = std::move(note);
}

void Progress::println(std::string_view line) {
  std::string text(line);
  text += '\n';
  if (!active_) {
    write_stderr(text);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (drawn_ && !finished_) {
    text.insert(0, "\r\x1b[K");
    write_stderr(text);
    draw_locked(false);
  } else {
    write_stderr(text);
  }
}

void Progress::finish() {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  if (drawn_) draw_locked(true);
  finished_ = true;
}

void Progress::maybe_draw() {
  const int64_t now = std::chrono::nanoseconds(Clock::now() - t0_).count();
  int64_t next = next_draw_ns_.load(std::memory_order_relaxed);
  if (now < next) return;
  // One thread wins the slot; the others carry on with their work.
  const int64_t after = now + std::chrono::nanoseconds(std::chrono::seconds(1)).count() / kRedrawHz;
  if (!next_draw_ns_.compare_exchange_strong(next, after, std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  draw_locked(false);
}

void Progress::draw_locked(bool final) {
  Snapshot s;
  s.done = done_.load(std::memory_order_relaxed);
  s.total = total_;
  s.seconds = std::chrono::duration<double>(Clock::now() - t0_).count();
  s.final = final;
  std::string line("\r");
  line += format(s, terminal_width() - 1);
  line += "\x1b[K";
  if (final) line += '\n';
  write_stderr(line);
  drawn_ = true;
}

std::string Progress::format(const Snapshot& s, int width) const {
  const bool bytes = kind_ == Unit::kBytes;
  const bool known = s.total > 0;
  const uint64_t done = known && s.done > s.total ? s.total : s.done;
  // Sizes in MiB below 10 GiB, else GiB; both figures in the unit of the total.
  const double scale = bytes && std::max(done, s.total) >= (uint64_t{10} << 30) ? 1 << 30 : 1 << 20;
  const char* size_unit = scale == (1 << 30) ? "GiB" : "MiB";
  auto amount = [&](uint64_t v) {
    return bytes ? number_text(static_cast<double>(v) / scale) : std::to_string(v);
  };
  const std::string unit = bytes ? size_unit : unit_;
  auto with_unit = [&](const std::string& t) { return unit.empty() ? t : t + " " + unit; };

  std::string counts =
      known ? amount(done) + "/" + with_unit(amount(s.total)) : with_unit(amount(done));
  std::string pct, bar;
  if (known) {
    const double f = static_cast<double>(done) / static_cast<double>(s.total);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%3d%%", static_cast<int>(f * 100));
    pct = buf;
    constexpr int kBar = 20;
    const int fill = static_cast<int>(f * kBar);
    bar = "[" + std::string(fill, '#') + std::string(kBar - fill, '.') + "]";
  }
  const double rate = s.seconds > 0 ? static_cast<double>(done) / s.seconds : 0;
  std::string rate_text;
  if (done > 0 && s.seconds > 0)
    rate_text = (bytes ? number_text(rate / scale) : number_text(rate)) + " " +
                (unit.empty() ? std::string("/s") : unit + "/s");
  std::string when;
  if (s.final)
    when = "in " + (s.seconds < 60 ? number_text(s.seconds) + " s" : clock_text(s.seconds));
  else if (known && rate > 0)
    when = "ETA " + clock_text(static_cast<double>(s.total - done) / rate);
  else if (known)
    when = "ETA --:--";
  const std::string& note = note_;  // draw_locked holds mu_

  auto join = [](std::initializer_list<const std::string*> parts) {
    std::string out;
    for (const std::string* p : parts) {
      if (p->empty()) continue;
      if (!out.empty()) out += "  ";
      out += *p;
    }
    return out;
  };
  std::string line = join({&label_, &bar, &pct, &counts, &rate_text, &when, &note});
  if (static_cast<int>(line.size()) > width) {  // the bar goes first, then the tail is cut
    line = join({&label_, &pct, &counts, &rate_text, &when, &note});
    if (width > 0 && static_cast<int>(line.size()) > width) {
      size_t cut = static_cast<size_t>(width);
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
      line.resize(cut);  // whole UTF-8 characters only
    }
  }
  return line;
}

}  // namespace tessera
