// A bound on how long one step of a multi-process run may take. A rank that has died or
// hangs leaves the others waiting in a collective that never returns; the watchdog turns
// that into a clear error and the end of the whole job.
//
//   arm("step 12") ... the step's collectives ... disarm()
//
// When a step stays armed longer than the timeout, a thread of the watchdog prints
// "error: rank R: <what> did not complete within T s ..." on stderr and ends every rank
// (dist::abort, MPI_Abort under mpirun). Arming and disarming take a mutex and no system
// call unless the watchdog thread is waiting on an armed step.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace tessera::dist {

class Watchdog {
 public:
  // on_expire(message) runs on the watchdog's thread; the default prints the message
  // and calls dist::abort(1). Tests pass their own.
  using Expire = std::function<void(const std::string& message)>;
  Watchdog(double timeout_s, std::string rank_name, Expire on_expire = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(const char* what);
  void disarm();
  double timeout_s() const { return timeout_.count(); }

 private:
  void watch();

  std::chrono::duration<double> timeout_;
  std::string rank_name_;
  Expire on_expire_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, quit_ = false;
  uint64_t generation_ = 0;  // counts arm() calls: a new step restarts the clock
  const char* what_ = "";
  std::chrono::steady_clock::time_point armed_at_;
  std::thread thread_;
};

}  // namespace tessera::dist
