#include "core/clock.h"

namespace tessera {
namespace {

class SteadyClock : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace

const Clock* SystemClock() {
  static const SteadyClock clock;
  return &clock;
}

}  // namespace tessera
