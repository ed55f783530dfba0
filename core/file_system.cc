#include "core/file_system.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace tessera {
namespace {

std::string Errno() { return std::strerror(errno); }

// `what` failed with errno: ResourceExhausted for a full disk or quota (no
// retry can help), else Unavailable.
Status ErrnoError(const std::string& what) {
  const int error = errno;  // before anything below can change it
  const std::string message = what + ": " + std::strerror(error);
  return error == ENOSPC || error == EDQUOT ? ResourceExhaustedError(message) : UnavailableError(message);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

class PosixWritableFile : public FileSystem::WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) close(fd_);
  }

  Status Append(std::string_view data) override {
    size_t written = 0;
    while (written < data.size()) {
      const ssize_t n = write(fd_, data.data() + written, data.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("cannot write " + path_);
      }
      written += static_cast<size_t>(n);
    }
    return OkStatus();
  }

  Status Sync() override {
    if (fsync(fd_) != 0) return ErrnoError("cannot flush " + path_);
    return OkStatus();
  }

  Status Close() override {
    const int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return ErrnoError("cannot close " + path_);
    return OkStatus();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileSystem : public FileSystem {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("cannot create " + path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) {
      return UnavailableError("cannot rename " + from + " to " + to + ": " + Errno());
    }
    return OkStatus();
  }

  Status RemoveFile(const std::string& path) override {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return UnavailableError("cannot remove " + path + ": " + Errno());
    return OkStatus();
  }

  Status SyncDirectory(const std::string& dir) override {
    const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return UnavailableError("cannot open directory " + dir + ": " + Errno());
    const int rc = fsync(fd);
    const std::string error = rc != 0 ? Errno() : "";
    close(fd);
    if (rc != 0) return UnavailableError("cannot fsync directory " + dir + ": " + error);
    return OkStatus();
  }

  Status MakeDirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return UnavailableError("cannot create directory " + path + ": " + ec.message());
    return OkStatus();
  }
};

// Writes, syncs and closes `temp`; the first failure.
Status WriteTemp(FileSystem* fs, const std::string& temp, const std::string& contents) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileSystem::WritableFile> file, fs->NewWritableFile(temp));
  RETURN_IF_ERROR(file->Append(contents));
  RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

}  // namespace

FileSystem* LocalFileSystem() {
  static PosixFileSystem fs;
  return &fs;
}

Status WriteFileAtomic(FileSystem* fs, const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  Status written = WriteTemp(fs, temp, contents);
  if (written.ok()) written = fs->Rename(temp, path);
  if (!written.ok()) {
    fs->RemoveFile(temp).IgnoreError();  // the error that matters is the write's
    return written;
  }
  fs->SyncDirectory(DirName(path)).IgnoreError();  // best effort: the rename is already visible
  return OkStatus();
}

}  // namespace tessera
