#include "tools/local_curve_keys.h"

#include <filesystem>

#include "core/file_util.h"

namespace tessera {

std::vector<std::string> LocalCurveKeys::SchedulerFlags() const {
  return {"--curve_secret_key", dir + "/scheduler.secret", "--curve_allow_keys", dir + "/allowed.keys"};
}

std::vector<std::string> LocalCurveKeys::ServerFlags() const {
  return {"--curve_secret_key",  dir + "/server.secret",   "--curve_allow_keys",
          dir + "/allowed.keys", "--scheduler_public_key", dir + "/scheduler.pub"};
}

std::vector<std::string> LocalCurveKeys::WorkerFlags() const {
  return {"--curve_secret_key", dir + "/worker.secret", "--scheduler_public_key", dir + "/scheduler.pub"};
}

StatusOr<LocalCurveKeys> MakeLocalCurveKeys(const std::string& run_dir) {
  LocalCurveKeys keys;
  keys.dir = run_dir + "/keys";
  std::error_code ec;
  std::filesystem::remove_all(keys.dir, ec);  // an earlier launch's keys
  if (ec) return UnavailableError("cannot remove " + keys.dir + ": " + ec.message());
  std::string allowed;
  for (const std::string name : {"scheduler", "server", "worker", "launcher"}) {
    ASSIGN_OR_RETURN(CurveKeyPair pair, GenerateCurveKeyPair());
    RETURN_IF_ERROR(WriteCurveKeyPair(pair, keys.dir, name));
    if (name == "scheduler") {
      keys.scheduler_public_key = pair.public_key;
    } else {  // every other node connects to the scheduler (and the workers to the servers)
      allowed += "curve-public-key " + pair.public_key + " " + name + "\n";
    }
    if (name == "launcher") keys.launcher = pair;
  }
  RETURN_IF_ERROR(WriteFileAtomic(keys.dir + "/allowed.keys", allowed));
  return keys;
}

}  // namespace tessera
