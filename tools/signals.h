// SIGINT/SIGTERM as a stop flag the roles' event loops poll.
#ifndef TESSERA_TOOLS_SIGNALS_H_
#define TESSERA_TOOLS_SIGNALS_H_

#include <atomic>

namespace tessera {

// Installs handlers for SIGINT and SIGTERM that set the returned flag (and
// ignores SIGPIPE). The flag lives for the whole process: a signal handler
// can reach nothing else.
const std::atomic<bool>* InstallStopSignals();

// The signal that set the flag, 0 if none.
int StopSignal();

// How many stop signals came (a second Ctrl-C means "now").
int StopSignalCount();

}  // namespace tessera

#endif  // TESSERA_TOOLS_SIGNALS_H_
