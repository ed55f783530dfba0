#include "tools/signals.h"

#include <csignal>

namespace tessera {
namespace {

std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};

std::atomic<int> stop_count{0};

void OnSignal(int sig) {
  stop_signal.store(sig);
  stop_count.fetch_add(1);
  stop_requested.store(true);
}

}  // namespace

const std::atomic<bool>* InstallStopSignals() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return &stop_requested;
}

int StopSignal() { return stop_signal.load(); }

int StopSignalCount() { return stop_count.load(); }

}  // namespace tessera
