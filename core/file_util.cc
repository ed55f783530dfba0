#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/sha256.h"

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

// Reads the file at `path` piece by piece into `consume`. NotFound when it
// cannot be opened, DataLoss on a read error.
template <typename Consume>
Status ReadInPieces(const std::string& path, size_t piece, Consume consume) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open " + path + ": " + Errno());
  std::vector<char> buf(piece);
  while (true) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string error = Errno();
      close(fd);
      return DataLossError("error reading " + path + ": " + error);
    }
    consume(buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  return OkStatus();
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::string out;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  RETURN_IF_ERROR(ReadInPieces(path, 1 << 16, [&](const char* data, size_t n) { out.append(data, n); }));
  return out;
}

StatusOr<std::string> Sha256OfFile(const std::string& path, uint64_t* size) {
  Sha256 sha;
  uint64_t total = 0;
  RETURN_IF_ERROR(ReadInPieces(path, 1 << 20, [&](const char* data, size_t n) {
    sha.Update(data, n);
    total += n;
  }));
  if (size != nullptr) *size = total;
  return sha.HexDigest();
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
