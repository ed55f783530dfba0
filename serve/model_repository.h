// The model repository a server serves: MODEL_REPO/NAME/VERSION/ directories
// as `tessera export` writes them (docs/FORMATS.md; the layout and its names
// are export/model_repository_layout.h). Every version found is
// loaded (a ServedModel each); a request without a version gets the newest.
// Poll() looks again: a new version is loaded completely before it becomes
// visible (one pointer swap under a lock), versions whose directory is gone
// are dropped, and requests in flight keep the version they started with
// (shared_ptr). A version that fails to load (e.g. still being copied in) is
// retried whenever its files change, and logged once per distinct error.
#ifndef TESSERA_SERVE_MODEL_REPOSITORY_H_
#define TESSERA_SERVE_MODEL_REPOSITORY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "serve/served_model.h"

namespace tessera {

class ModelRepository {
 public:
  ModelRepository(std::string root, BatchOptions options) : root_(std::move(root)), options_(std::move(options)) {}
  ~ModelRepository() { StopPolling(); }

  // Scans the repository once, loading new versions and dropping removed
  // ones. Returns the errors of versions that failed to load this time
  // ("NAME/VERSION: why"), logging each new one when `log`. NotFound when
  // the root is not a directory.
  StatusOr<std::vector<std::string>> Poll(bool log = true);

  // Poll() every interval on a thread of its own, until StopPolling.
  void StartPolling(std::chrono::milliseconds interval);
  void StopPolling();

  // The model `name` at `version` (0: the newest). NotFound naming what is missing.
  StatusOr<std::shared_ptr<ServedModel>> Find(const std::string& name, int64_t version) const;

  // Loaded versions of `name`, ascending (empty when unknown).
  std::vector<int64_t> Versions(const std::string& name) const;
  // Names of the models with at least one loaded version, and their newest version.
  std::map<std::string, int64_t> Newest() const;
  const std::string& root() const { return root_; }

 private:
  struct Failure {
    std::string stamp;  // sizes and times of the files when it failed
    std::string error;
  };
  const std::string root_;
  const BatchOptions options_;
  std::mutex poll_mu_;  // one Poll at a time
  std::map<std::string, Failure> failures_;  // by "NAME/VERSION", under poll_mu_
  mutable std::mutex mu_;
  std::map<std::string, std::map<int64_t, std::shared_ptr<ServedModel>>> models_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread poller_;
};

}  // namespace tessera

#endif  // TESSERA_SERVE_MODEL_REPOSITORY_H_
