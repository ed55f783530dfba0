#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/file_system.h"
#include "core/sha256.h"

namespace tessera {
namespace {

std::string Errno() { return std::strerror(errno); }

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
  return WriteFileAtomic(LocalFileSystem(), path, contents);
}

Status MakeDirs(const std::string& path) { return LocalFileSystem()->MakeDirs(path); }

Status SyncDirectory(const std::string& dir) { return LocalFileSystem()->SyncDirectory(dir); }

StatusOr<std::unique_ptr<TempDirectory>> TempDirectory::Make(const std::string& parent, const std::string& prefix) {
  std::error_code error;
  const std::string base = parent.empty() ? std::filesystem::temp_directory_path(error).string() : parent;
  if (error) return UnavailableError("no temp directory for " + prefix + ": " + error.message());
  std::string name = base + "/" + prefix + "XXXXXX";
  if (mkdtemp(name.data()) == nullptr) return UnavailableError("cannot make a temp directory " + name + ": " + Errno());
  return std::unique_ptr<TempDirectory>(new TempDirectory(name));
}

TempDirectory::~TempDirectory() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);  // best effort: what is left is only temp files
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace tessera
