// CURVE keys for one launch of a local job (`tessera train --curve`): a
// fresh pair per role kind in RUN/keys/ (the scheduler's, one the servers
// share, one the workers share, the launcher's) and the allow-list of the
// last three, which the scheduler and servers admit. Made anew at every
// launch (a resume, a restart after the scheduler died), so a key never
// outlives the processes it was made for.
#ifndef TESSERA_TOOLS_LOCAL_CURVE_KEYS_H_
#define TESSERA_TOOLS_LOCAL_CURVE_KEYS_H_

#include <string>
#include <vector>

#include "core/curve_keys.h"
#include "core/status.h"

namespace tessera {

struct LocalCurveKeys {
  std::string dir;  // RUN/keys
  CurveKeyPair launcher;
  std::string scheduler_public_key;

  // The CURVE flags of each role's command line.
  std::vector<std::string> SchedulerFlags() const;
  std::vector<std::string> ServerFlags() const;
  std::vector<std::string> WorkerFlags() const;
};

// Writes the keys into RUN/keys (replacing an earlier launch's).
// Unavailable on an I/O error.
StatusOr<LocalCurveKeys> MakeLocalCurveKeys(const std::string& run_dir);

}  // namespace tessera

#endif  // TESSERA_TOOLS_LOCAL_CURVE_KEYS_H_
