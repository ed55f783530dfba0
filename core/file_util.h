// Small file helpers. Every write that must survive a crash is atomic: a
// temp file in the same directory, fsync, rename, then fsync the directory.
#ifndef TESSERA_CORE_FILE_UTIL_H_
#define TESSERA_CORE_FILE_UTIL_H_

#include <string>

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

}  // namespace tessera

#endif  // TESSERA_CORE_FILE_UTIL_H_
