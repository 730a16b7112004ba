#include "dist/watchdog.h"

#include <cstdio>

#include "dist/runtime.h"

namespace tessera::dist {

Watchdog::Watchdog(double timeout_s, std::string rank_name, Expire on_expire)
    : timeout_(timeout_s), rank_name_(std::move(rank_name)), on_expire_(std::move(on_expire)) {
  if (!on_expire_)
    on_expire_ = [](const std::string& message) {
      std::fprintf(stderr, "error: %s\n", message.c_str());
      std::fflush(stderr);
      abort(1);
    };
  thread_ = std::thread([this] { watch(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::arm(const char* what) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = true;
    what_ = what;
    armed_at_ = std::chrono::steady_clock::now();
    ++generation_;
  }
  cv_.notify_all();
}

void Watchdog::disarm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = false;
}

void Watchdog::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || armed_; });
    if (quit_) return;
    // Armed: wait for the deadline of this arming, unless it is disarmed or re-armed.
    const uint64_t gen = generation_;
    const auto deadline =
        armed_at_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    if (cv_.wait_until(lock, deadline, [&] { return quit_ || !armed_ || generation_ != gen; }))
      continue;
    char buf[160];
    std::snprintf(buf, sizeof buf, " did not complete within %.0f s (--dist-timeout)",
                  timeout_.count());
    const std::string message =
        rank_name_ + ": " + what_ + buf + ": another rank has died or hangs; ending every rank";
    lock.unlock();
    on_expire_(message);
    return;
  }
}

}  // namespace tessera::dist
