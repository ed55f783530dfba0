// Small file helpers. Every write that must survive a crash is atomic: a
// temp file in the same directory, fsync, rename, then fsync the directory.
#ifndef TESSERA_CORE_FILE_UTIL_H_
#define TESSERA_CORE_FILE_UTIL_H_

#include <memory>
#include <string>
#include <utility>

#include "core/status.h"

namespace tessera {

// NotFound when the file cannot be opened, DataLoss on a read error.
StatusOr<std::string> ReadFileToString(const std::string& path);

// SHA-256 of a file's bytes (lower-case hex), read in 1 MiB pieces; its size
// through *size when not null. NotFound when it cannot be opened.
StatusOr<std::string> Sha256OfFile(const std::string& path, uint64_t* size);

// Replaces `path` with `contents` atomically, on the local file system
// (core/file_system.h has the seam). Unavailable on any I/O error (disk full
// included); the old file is then left untouched.
Status WriteFileAtomic(const std::string& path, const std::string& contents);

// mkdir -p. Unavailable naming the directory on failure.
Status MakeDirs(const std::string& path);

bool FileExists(const std::string& path);

// fsyncs a directory, so renames and new files in it survive a crash.
// Unavailable on failure.
Status SyncDirectory(const std::string& dir);

// A directory of temporary files that lives as long as this object: made
// fresh (mkdtemp) and removed with everything in it by the destructor, on
// success and on error alike. A process killed outright leaves it behind.
// Not thread-safe.
class TempDirectory {
 public:
  // Makes PARENT/PREFIXXXXXXX; `parent` "" is the system's temp directory
  // (TMPDIR, else /tmp). Unavailable naming the directory on failure.
  static StatusOr<std::unique_ptr<TempDirectory>> Make(const std::string& parent, const std::string& prefix);

  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  ~TempDirectory();

  const std::string& path() const { return path_; }

 private:
  explicit TempDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace tessera

#endif  // TESSERA_CORE_FILE_UTIL_H_
