#include "core/checkpoint_manifest.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/file_util.h"
#include "core/sha256.h"

namespace tessera {
namespace {

constexpr int kFormatVersion = 1;

// Checkpoint directories in `checkpoints_dir` that are committed (have a
// MANIFEST) or, with committed=false, that are not; by step, oldest first.
std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& checkpoints_dir, bool committed) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 || !entry.is_directory()) continue;
    char* end = nullptr;
    const long long step = std::strtoll(name.c_str() + 5, &end, 10);
    if (end == name.c_str() + 5 || *end != '\0') continue;
    if (FileExists(entry.path().string() + "/MANIFEST") != committed) continue;
    found.emplace_back(step, name);
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

std::string CheckpointName(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step-%012lld", static_cast<long long>(step));
  return buf;
}

StatusOr<proto::CheckpointManifest> ReadManifest(const std::string& checkpoint_dir) {
  const std::string path = checkpoint_dir + "/MANIFEST";
  if (!FileExists(path)) return NotFoundError(checkpoint_dir + " is not a checkpoint: it has no MANIFEST");
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  proto::CheckpointManifest manifest;
  if (!manifest.ParseFromString(bytes)) return DataLossError(path + " does not parse");
  if (manifest.format_version() != kFormatVersion) {
    return DataLossError(path + " has format_version " + std::to_string(manifest.format_version()) + ", expected " +
                         std::to_string(kFormatVersion));
  }
  return manifest;
}

Status WriteManifest(const std::string& checkpoint_dir, const proto::CheckpointManifest& manifest, FileSystem* fs) {
  proto::CheckpointManifest m = manifest;
  m.set_format_version(kFormatVersion);
  std::string text;
  google::protobuf::TextFormat::PrintToString(m, &text);
  RETURN_IF_ERROR(WriteFileAtomic(fs, checkpoint_dir + "/MANIFEST.txt", text));
  std::string bytes;
  if (!m.SerializeToString(&bytes)) return InternalError("manifest does not serialize");
  return WriteFileAtomic(fs, checkpoint_dir + "/MANIFEST", bytes);
}

Status VerifyCheckpoint(const std::string& checkpoint_dir, const proto::CheckpointManifest& manifest) {
  if (manifest.servers_size() == 0) return DataLossError(checkpoint_dir + "/MANIFEST lists no server parts");
  for (const proto::ServerPart& part : manifest.servers()) {
    if (part.dir().empty() || part.dir().find("..") != std::string::npos || part.dir()[0] == '/') {
      return DataLossError(checkpoint_dir + "/MANIFEST names a bad part directory '" + part.dir() + "'");
    }
    if (part.files_size() == 0) return DataLossError(checkpoint_dir + "/MANIFEST lists no files for " + part.dir());
    for (const proto::FileChecksum& f : part.files()) {
      const std::string path = checkpoint_dir + "/" + part.dir() + "/" + f.name();
      if (f.name().find('/') != std::string::npos) return DataLossError(path + ": bad file name in the manifest");
      uint64_t size = 0;
      auto digest = Sha256OfFile(path, &size);
      if (!digest.ok()) return DataLossError(path + " is missing");
      if (size != f.size()) {
        return DataLossError(path + " holds " + std::to_string(size) + " bytes, the manifest says " +
                             std::to_string(f.size()));
      }
      if (*digest != f.sha256()) {
        return DataLossError(path + " does not match its checksum in the manifest (corrupt)");
      }
    }
  }
  return OkStatus();
}

Status UpdateLatest(const std::string& checkpoints_dir, const std::string& name, FileSystem* fs) {
  return WriteFileAtomic(fs, checkpoints_dir + "/latest", name + "\n");
}

Status PruneCheckpoints(const std::string& checkpoints_dir, int keep_last, int64_t keep_step) {
  if (keep_last < 1) return InvalidArgumentError("keep_last must be >= 1, got " + std::to_string(keep_last));
  Status first;
  auto remove = [&](const std::string& name) {
    std::error_code ec;
    std::filesystem::remove_all(checkpoints_dir + "/" + name, ec);
    if (ec && first.ok()) first = UnavailableError("cannot delete " + checkpoints_dir + "/" + name + ": " + ec.message());
  };
  const auto committed = ListCheckpoints(checkpoints_dir, true);
  for (size_t i = 0; i + keep_last < committed.size(); ++i) {
    if (committed[i].first != keep_step) remove(committed[i].second);
  }
  if (!committed.empty()) {
    for (const auto& [step, name] : ListCheckpoints(checkpoints_dir, false)) {
      if (step < committed.back().first) remove(name);
    }
  }
  return first;
}

Status RemoveCheckpointsAfter(const std::string& checkpoints_dir, int64_t step, std::vector<std::string>* removed) {
  for (bool committed : {true, false}) {
    for (const auto& [s, name] : ListCheckpoints(checkpoints_dir, committed)) {
      if (s <= step) continue;
      std::error_code ec;
      std::filesystem::remove_all(checkpoints_dir + "/" + name, ec);
      if (ec) return UnavailableError("cannot delete " + checkpoints_dir + "/" + name + ": " + ec.message());
      removed->push_back(name);
    }
  }
  return OkStatus();
}

namespace {

// The checkpoints/ folder that `path` stands for, or "" when it stands for
// none: a run directory, its checkpoints/ itself, or checkpoints/latest (the
// file users see first, naming the newest checkpoint).
std::string CheckpointsDirOf(const std::string& path) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p / "checkpoints", ec)) return (p / "checkpoints").string();
  if (p.filename() == "checkpoints" && std::filesystem::is_directory(p, ec)) return path;
  if (p.filename() == "latest" && p.parent_path().filename() == "checkpoints" &&
      std::filesystem::is_regular_file(p, ec)) {
    return p.parent_path().string();
  }
  return "";
}

}  // namespace

StatusOr<std::string> ResolveCheckpoint(const std::string& path, std::string* note) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (FileExists(p + "/MANIFEST")) {
    ASSIGN_OR_RETURN(proto::CheckpointManifest m, ReadManifest(p));
    RETURN_IF_ERROR(VerifyCheckpoint(p, m));
    *note = "checkpoint " + p + " (step " + std::to_string(m.step()) + ")";
    return p;
  }
  const std::string checkpoints = CheckpointsDirOf(p);
  if (checkpoints.empty()) {
    if (!FileExists(p)) return NotFoundError(p + " does not exist");
    return NotFoundError(p + " is not a checkpoint (it has no MANIFEST), a run directory (no checkpoints/) or "
                         "a run's checkpoints/latest");
  }
  std::vector<std::string> candidates;
  std::string latest;
  if (auto text = ReadFileToString(checkpoints + "/latest"); text.ok()) {
    latest = *text;
    while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
    // Only a plain checkpoint name: `latest` must not lead outside checkpoints/.
    if (latest.rfind("step-", 0) != 0 || latest.find('/') != std::string::npos) latest.clear();
    if (!latest.empty()) candidates.push_back(latest);
  }
  const auto committed = ListCheckpoints(checkpoints, true);
  for (auto it = committed.rbegin(); it != committed.rend(); ++it) {
    if (it->second != latest) candidates.push_back(it->second);
  }
  std::string skipped;
  for (const std::string& name : candidates) {
    const std::string dir = checkpoints + "/" + name;
    auto m = ReadManifest(dir);
    Status ok = m.ok() ? VerifyCheckpoint(dir, *m) : m.status();
    if (ok.ok()) {
      *note = "checkpoint " + dir + " (step " + std::to_string(m->step()) + ")";
      if (!skipped.empty()) *note += "; skipped " + skipped;
      return dir;
    }
    if (!skipped.empty()) skipped += "; ";
    skipped += name + ": " + ok.message();
  }
  if (!skipped.empty()) return DataLossError("no intact checkpoint in " + checkpoints + ": " + skipped);
  return NotFoundError("no checkpoint in " + checkpoints);
}

std::string RunDirOf(const std::string& checkpoint_dir) {
  std::filesystem::path p(checkpoint_dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing slash
  return p.parent_path().parent_path().string();
}

}  // namespace tessera
