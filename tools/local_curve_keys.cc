#include "tools/local_curve_keys.h"

#include <filesystem>

#include "core/file_util.h"

namespace tessera {
namespace {

constexpr const char* kAdmitted[] = {"server", "worker", "launcher"};

}  // namespace

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
  for (const char* name : {"scheduler", "server", "worker", "launcher"}) {
    ASSIGN_OR_RETURN(CurveKeyPair pair, GenerateCurveKeyPair());
    RETURN_IF_ERROR(WriteCurveKeyPair(pair, keys.dir, name));
    if (std::string(name) == "scheduler") keys.scheduler_public_key = pair.public_key;
    if (std::string(name) == "launcher") keys.launcher = pair;
    for (const char* admitted : kAdmitted) {
      if (std::string(name) == admitted) allowed += "curve-public-key " + pair.public_key + " " + name + "\n";
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(keys.dir + "/allowed.keys", allowed));
  return keys;
}

}  // namespace tessera
