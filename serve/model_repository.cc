#include "serve/model_repository.h"

#include <glog/logging.h>

#include <filesystem>

#include "export/model_repository_layout.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Changes whenever a file of the version directory is written.
std::string Stamp(const fs::path& dir) {
  std::string stamp;
  std::error_code ec;
  for (const char* file : {kModelFileName, kManifestFileName}) {
    const fs::path p = dir / file;
    const auto size = fs::file_size(p, ec);
    stamp.append(ec ? std::string("-") : std::to_string(size));
    const auto time = fs::last_write_time(p, ec);
    stamp.append(1, '@').append(ec ? std::string("-") : std::to_string(time.time_since_epoch().count())).append(1, ';');
  }
  return stamp;
}

}  // namespace

StatusOr<std::vector<std::string>> ModelRepository::Poll(bool log) {
  std::lock_guard<std::mutex> poll_lock(poll_mu_);
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return NotFoundError("model repository " + root_ + " is not a directory");
  // What is on disk now.
  std::map<std::string, std::map<int64_t, fs::path>> found;
  for (const auto& model_dir : fs::directory_iterator(root_, ec)) {
    const std::string name = model_dir.path().filename().string();
    if (!ValidModelName(name) || !model_dir.is_directory(ec)) continue;
    for (const auto& [version, version_dir] : ListVersions(model_dir.path().string())) {
      found[name][version] = version_dir;
    }
  }
  std::vector<std::string> errors;
  std::map<std::string, std::map<int64_t, std::shared_ptr<ServedModel>>> loaded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    loaded = models_;
  }
  bool changed = false;
  for (const auto& [name, versions] : found) {
    for (const auto& [version, path] : versions) {
      if (loaded.count(name) && loaded[name].count(version)) continue;
      const std::string key = name + "/" + std::to_string(version);
      const std::string stamp = Stamp(path);
      auto failed = failures_.find(key);
      if (failed != failures_.end() && failed->second.stamp == stamp) continue;  // unchanged since it failed
      auto served = ServedModel::Load(path.string(), name, version, options_);
      if (!served.ok()) {
        const std::string error = served.status().message();
        if (log && (failed == failures_.end() || failed->second.error != error)) {
          LOG(WARNING) << "cannot load " << key << " (retried when its files change): " << error;
        }
        failures_[key] = {stamp, error};
        errors.push_back(key + ": " + error);
        continue;
      }
      failures_.erase(key);
      LOG(INFO) << "loaded " << key << " (" << (*served)->files().model.spec.layer_size() << " layers, "
                << (*served)->files().model.params.size() << " parameters, sha256 " << (*served)->files().sha256 << ")";
      loaded[name][version] = std::move(served).value();
      changed = true;
    }
  }
  // Versions whose directories are gone.
  for (auto model = loaded.begin(); model != loaded.end();) {
    for (auto v = model->second.begin(); v != model->second.end();) {
      if (found.count(model->first) && found[model->first].count(v->first)) {
        ++v;
      } else {
        LOG(INFO) << "unloaded " << model->first << "/" << v->first << " (its directory is gone)";
        v = model->second.erase(v);
        changed = true;
      }
    }
    model = model->second.empty() ? loaded.erase(model) : std::next(model);
  }
  for (auto it = failures_.begin(); it != failures_.end();) {
    const size_t slash = it->first.rfind('/');
    const std::string name = it->first.substr(0, slash);
    const int64_t version = ParseVersion(it->first.substr(slash + 1));
    it = found.count(name) && found[name].count(version) ? std::next(it) : failures_.erase(it);
  }
  if (changed) {
    std::lock_guard<std::mutex> lock(mu_);
    models_.swap(loaded);
  }
  // The old map (in `loaded` now) is released here, outside the lock: a
  // version nobody uses any more stops its thread.
  return errors;
}

void ModelRepository::StartPolling(std::chrono::milliseconds interval) {
  poller_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_cv_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      auto polled = Poll();
      if (!polled.ok()) LOG(WARNING) << polled.status().message();
      lock.lock();
    }
  });
}

void ModelRepository::StopPolling() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

StatusOr<std::shared_ptr<ServedModel>> ModelRepository::Find(const std::string& name, int64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto model = models_.find(name);
  if (model == models_.end() || model->second.empty()) return NotFoundError("unknown model '" + name + "'");
  if (version == 0) return model->second.rbegin()->second;
  auto v = model->second.find(version);
  if (v == model->second.end()) {
    return NotFoundError("model '" + name + "' has no version " + std::to_string(version));
  }
  return v->second;
}

std::vector<int64_t> ModelRepository::Versions(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> versions;
  auto model = models_.find(name);
  if (model != models_.end()) {
    for (const auto& [v, served] : model->second) versions.push_back(v);
  }
  return versions;
}

std::map<std::string, int64_t> ModelRepository::Newest() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, int64_t> newest;
  for (const auto& [name, versions] : models_) {
    if (!versions.empty()) newest[name] = versions.rbegin()->first;
  }
  return newest;
}

}  // namespace tessera
