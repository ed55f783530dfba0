// Files behind a seam, as LevelDB's Env: the product writes through the
// local file system; a test hands a component a file system that fails where
// it says (a full disk, a short write, an fsync or rename error) and checks
// that nothing is left half written. WriteFileAtomic is built on its
// primitives, so every atomic write can be failed at each of its steps.
#ifndef TESSERA_CORE_FILE_SYSTEM_H_
#define TESSERA_CORE_FILE_SYSTEM_H_

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tessera {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // A file being written: Append, then Sync, then Close. Each returns
  // Unavailable naming the file and the cause on failure (a full disk
  // included); the file is then in an unknown state.
  class WritableFile {
   public:
    virtual ~WritableFile() = default;
    virtual Status Append(std::string_view data) = 0;
    virtual Status Sync() = 0;
    virtual Status Close() = 0;
  };

  // Creates (or truncates) `path`. Unavailable when it cannot.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // rename(2): replaces `to` atomically. Unavailable on failure.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Removes a file; OK when it is not there. Unavailable on other failures.
  virtual Status RemoveFile(const std::string& path) = 0;
  // fsyncs a directory, so renames and new files in it survive a crash.
  virtual Status SyncDirectory(const std::string& dir) = 0;
  // mkdir -p. Unavailable naming the directory on failure.
  virtual Status MakeDirs(const std::string& path) = 0;
};

// The machine's own file system (POSIX calls). Thread-safe; lives for the
// whole program.
FileSystem* LocalFileSystem();

// Replaces `path` with `contents` atomically through `fs`: a temp file in
// the same directory, written, fsynced and closed, renamed over `path`, then
// the directory fsynced (best effort: the rename is visible already).
// Unavailable on any failure, with the old file untouched and the temp file
// removed.
Status WriteFileAtomic(FileSystem* fs, const std::string& path, const std::string& contents);

}  // namespace tessera

#endif  // TESSERA_CORE_FILE_SYSTEM_H_
