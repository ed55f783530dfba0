// Time as the roles read it, behind a seam (as LevelDB's Env is for files):
// the product reads the system's steady clock; a test hands a role a
// ManualClock and moves time itself, so deadlines (heartbeat and register
// timeouts, checkpoint timers) are reached when the test says, not after
// real seconds.
#ifndef TESSERA_CORE_CLOCK_H_
#define TESSERA_CORE_CLOCK_H_

#include <atomic>
#include <chrono>

namespace tessera {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The system's steady clock, shared. Thread-safe; lives for the whole program.
const Clock* SystemClock();

// A clock that moves only when told to, from the epoch of steady_clock.
// Thread-safe: one thread may advance it while another reads it.
class ManualClock : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(Duration(now_.load())); }
  void Advance(Duration by) { now_ += by.count(); }

 private:
  std::atomic<Duration::rep> now_{0};
};

}  // namespace tessera

#endif  // TESSERA_CORE_CLOCK_H_
