#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tessera {
namespace {

std::string Errno() { return std::strerror(errno); }

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path + ": " + Errno());
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return DataLossError("error reading " + path);
  return s.str();
}

Status WriteFileAtomic(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError("cannot create " + temp + ": " + Errno());
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string error = Errno();
      close(fd);
      unlink(temp.c_str());
      return UnavailableError("cannot write " + temp + ": " + error);
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const std::string error = Errno();
    unlink(temp.c_str());
    return UnavailableError("cannot flush " + temp + ": " + error);
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const std::string error = Errno();
    unlink(temp.c_str());
    return UnavailableError("cannot rename " + temp + " to " + path + ": " + error);
  }
  const int dir = open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);  // best effort: the rename is already visible
    close(dir);
  }
  return OkStatus();
}

Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return UnavailableError("cannot create directory " + path + ": " + ec.message());
  return OkStatus();
}

Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return UnavailableError("cannot open directory " + dir + ": " + Errno());
  const int rc = fsync(fd);
  const std::string error = rc != 0 ? Errno() : "";
  close(fd);
  if (rc != 0) return UnavailableError("cannot sync directory " + dir + ": " + error);
  return OkStatus();
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace tessera
