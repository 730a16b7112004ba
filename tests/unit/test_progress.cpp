#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/progress.h"

namespace tessera {
namespace {

TEST(Progress, FormatsCountsRateAndEta) {
  Progress p("perplexity", 1000, "tok");
  Progress::Snapshot s{250, 1000, 5.0, false};  // 50 tok/s, 750 left: 15 s
  EXPECT_EQ(p.format(s, 200),
            "perplexity  [#####...............]   25%  250/1000 tok  50.0 tok/s  ETA 0:15");
  s = {1000, 1000, 20.0, true};
  EXPECT_EQ(p.format(s, 200),
            "perplexity  [####################]  100%  1000/1000 tok  50.0 tok/s  in 20.0 s");
}

TEST(Progress, FormatsBytes) {
  Progress p("loading m.gguf", uint64_t{512} << 20, "", Progress::Unit::kBytes);
  Progress::Snapshot s{uint64_t{128} << 20, uint64_t{512} << 20, 2.0, false};
  EXPECT_EQ(p.format(s, 200),
            "loading m.gguf  [#####...............]   25%  128/512 MiB  64.0 MiB/s  ETA 0:06");
  Progress big("w", uint64_t{20} << 30, "", Progress::Unit::kBytes);
  s = {uint64_t{5} << 30, uint64_t{20} << 30, 3725.0, false};
  EXPECT_EQ(big.format(s, 200),
            "w  [#####...............]   25%  5.00/20.0 GiB  0.00 GiB/s  ETA 3:06:15");
}

TEST(Progress, UnknownTotalAndNarrowTerminal) {
  Progress p("fetch", 0, "req");
  EXPECT_EQ(p.format({3, 0, 1.5, false}, 200), "fetch  3 req  2.00 req/s");
  EXPECT_EQ(p.format({0, 0, 0.0, false}, 200), "fetch  0 req");
  Progress q("perplexity", 1000, "tok");
  // Too wide: the bar goes, then the tail is cut.
  EXPECT_EQ(q.format({250, 1000, 5.0, false}, 50),
            "perplexity   25%  250/1000 tok  50.0 tok/s  ETA 0:");
  EXPECT_EQ(q.format({250, 1000, 5.0, false}, 60),
            "perplexity   25%  250/1000 tok  50.0 tok/s  ETA 0:15");
}

TEST(Progress, InactiveWhenDisabledOrNotATerminal) {
  set_progress_enabled(false);
  Progress off("x", 10);
  EXPECT_FALSE(off.active());
  set_progress_enabled(true);
  // Tests run with stderr redirected by ctest: not a terminal, so still nothing drawn.
  Progress p("x", 10);
  EXPECT_EQ(p.active(), progress_on_terminal());
  set_progress_enabled(false);
}

// Runs `fn` with stderr on a pseudo-terminal; returns what was written to it.
template <class Fn>
std::string on_pty(Fn fn) {
  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return "(no pty)";
  const int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  const int saved = dup(STDERR_FILENO);
  dup2(slave, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(slave);
  std::string out;
  char buf[4096];
  fcntl(master, F_SETFL, O_NONBLOCK);
  for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) out.append(buf, n);
  close(master);
  return out;
}

TEST(Progress, DrawsOnATerminalFromManyThreads) {
  set_progress_enabled(true);
  bool active = false;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = on_pty([&] {
    Progress p("work", 8000, "items");
    active = p.active();
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 100; ++i) {
          p.add(10);
          std::this_thread::sleep_for(std::chrono::milliseconds(8));
        }
      });
    for (auto& t : ts) t.join();
    p.println("a log line");
    p.finish();
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  set_progress_enabled(false);
  if (out == "(no pty)") GTEST_SKIP() << "no pseudo-terminal";
  ASSERT_TRUE(active);
  // Every add from every thread is counted: the final line has all of them.
  EXPECT_NE(out.find("100%  8000/8000 items"), std::string::npos) << out;
  EXPECT_NE(out.find("a log line"), std::string::npos);
  EXPECT_EQ(out.back(), '\n');
  // Redraws are rate-limited: the work takes ~0.8 s, so at most ~10 of them (and the
  // first only after Progress::kFirstDrawDelay), plus the log line's and the final one.
  const auto n_draws = std::count(out.begin(), out.end(), '\r');
  EXPECT_GE(n_draws, 2);
  EXPECT_LE(n_draws, static_cast<long>(secs * Progress::kRedrawHz) + 3) << out;
}

TEST(Progress, QuickWorkDrawsNothing) {
  set_progress_enabled(true);
  const std::string out = on_pty([] {
    Progress p("quick", 10);
    for (int i = 0; i < 10; ++i) p.add();
    p.finish();
  });
  set_progress_enabled(false);
  if (out == "(no pty)") GTEST_SKIP() << "no pseudo-terminal";
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace tessera
