#include "core/idx_reader.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace tessera {
namespace {

constexpr size_t kChunkBytes = size_t{8} << 20;       // bytes per gzread call
constexpr size_t kMaxUpfrontReserve = size_t{64} << 20;  // trust headers only this far

std::string Hex(uint8_t byte) {
  char text[8];
  std::snprintf(text, sizeof(text), "0x%02x", byte);
  return text;
}

// An open gzip-or-plain file; closes it on destruction.
class GzFile {
 public:
  GzFile() = default;
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Opens `path` for reading. Returns NotFound when it does not exist.
  Status Open(const std::string& path) {
    path_ = path;
    struct stat info;
    if (stat(path.c_str(), &info) != 0) {
      const int error = errno;
      if (error == ENOENT || error == ENOTDIR) return NotFoundError("IDX file not found: " + path);
      return FailedPreconditionError("cannot stat IDX file " + path + ": " + std::strerror(error));
    }
    if (S_ISDIR(info.st_mode)) return InvalidArgumentError("IDX path is a directory: " + path);
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      return FailedPreconditionError("cannot open IDX file " + path + ": " + std::strerror(errno));
    }
    gzbuffer(file_, 1u << 20);  // larger input buffer: fewer read syscalls
    return OkStatus();
  }

  // Reads up to `size` bytes; stops early only at end of data. Returns the
  // count read, or DataLoss/Unavailable when the stream is corrupt or unreadable.
  StatusOr<size_t> Read(void* buffer, size_t size) {
    size_t total = 0;
    uint8_t* out = static_cast<uint8_t*>(buffer);
    while (total < size) {
      const unsigned want = static_cast<unsigned>(std::min(size - total, kChunkBytes));
      const int got = gzread(file_, out + total, want);
      if (got < 0) return StreamError();
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    // gzread reports a truncated gzip stream as a short read plus Z_BUF_ERROR.
    RETURN_IF_ERROR(CheckStream());
    return total;
  }

  // OK unless the stream has recorded an error (truncation, corruption, I/O).
  Status CheckStream() {
    int code = Z_OK;
    gzerror(file_, &code);
    if (code == Z_OK) return OkStatus();
    return StreamError();
  }

 private:
  Status StreamError() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    const std::string detail = message != nullptr ? message : "unknown error";
    if (code == Z_ERRNO) {
      return UnavailableError("error reading IDX file " + path_ + ": " + std::strerror(errno));
    }
    if (code == Z_BUF_ERROR) {
      return DataLossError("IDX file " + path_ + ": compressed stream is truncated (" + detail + ")");
    }
    return DataLossError("IDX file " + path_ + ": corrupt compressed stream (" + detail + ")");
  }

  gzFile file_ = nullptr;
  std::string path_;
};

// Reads and validates the header; returns the dims.
StatusOr<std::vector<uint32_t>> ReadHeader(GzFile& file, const std::string& path, uint8_t* type) {
  uint8_t magic[4];
  ASSIGN_OR_RETURN(const size_t got, file.Read(magic, sizeof(magic)));
  if (got != sizeof(magic)) {
    return DataLossError("IDX file " + path + ": truncated header: expected 4 magic bytes, got " +
                         std::to_string(got));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    return InvalidArgumentError("IDX file " + path + ": bad magic: expected 0x00 0x00, got " +
                                Hex(magic[0]) + " " + Hex(magic[1]));
  }
  if (magic[2] != kIdxUnsignedByte && magic[2] != kIdxInt32) {
    return InvalidArgumentError("IDX file " + path + ": unsupported data type: expected " +
                                Hex(kIdxUnsignedByte) + " (unsigned byte) or " + Hex(kIdxInt32) + " (int32), got " +
                                Hex(magic[2]));
  }
  *type = magic[2];
  const int ndims = magic[3];
  if (ndims < 1 || ndims > kIdxMaxDims) {
    return InvalidArgumentError("IDX file " + path + ": expected 1 to " + std::to_string(kIdxMaxDims) +
                                " dimensions, got " + std::to_string(ndims));
  }

  uint8_t raw[4 * kIdxMaxDims];
  const size_t dim_bytes = 4 * static_cast<size_t>(ndims);
  ASSIGN_OR_RETURN(const size_t got_dims, file.Read(raw, dim_bytes));
  if (got_dims != dim_bytes) {
    return DataLossError("IDX file " + path + ": truncated header: expected " + std::to_string(dim_bytes) +
                         " bytes of dimensions, got " + std::to_string(got_dims));
  }
  std::vector<uint32_t> dims(ndims);
  for (int i = 0; i < ndims; ++i) {
    const uint8_t* p = raw + 4 * i;
    dims[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  }
  return dims;
}

// The element count of `dims`, or InvalidArgument when it does not fit in memory sizes.
StatusOr<size_t> ElementCount(const std::vector<uint32_t>& dims, const std::string& path) {
  // Products beyond int64 cannot be indexed by callers that use int64_t.
  constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t count = 1;
  for (uint32_t dim : dims) {
    if (dim != 0 && count > kLimit / dim) {
      return InvalidArgumentError("IDX file " + path + ": dimensions too large: element count overflows");
    }
    count *= dim;
  }
  if (count > std::numeric_limits<size_t>::max()) {
    return InvalidArgumentError("IDX file " + path + ": dimensions too large for this machine");
  }
  return static_cast<size_t>(count);
}

}  // namespace

StatusOr<std::vector<uint32_t>> ReadIdxDims(const std::string& path, uint8_t* type) {
  GzFile file;
  RETURN_IF_ERROR(file.Open(path));
  uint8_t read_type = 0;
  ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadHeader(file, path, &read_type));
  RETURN_IF_ERROR(ElementCount(dims, path).status());
  if (type != nullptr) *type = read_type;
  return dims;
}

StatusOr<IdxArray> ReadIdxFile(const std::string& path) {
  GzFile file;
  RETURN_IF_ERROR(file.Open(path));
  IdxArray array;
  ASSIGN_OR_RETURN(array.dims, ReadHeader(file, path, &array.type));
  ASSIGN_OR_RETURN(const size_t elements, ElementCount(array.dims, path));
  const size_t element_bytes = array.type == kIdxInt32 ? 4 : 1;
  if (elements > SIZE_MAX / element_bytes) {
    return InvalidArgumentError("IDX file " + path + ": dimensions too large");
  }
  const size_t expected = elements * element_bytes;

  // Grow the buffer as data arrives so that a corrupt header claiming
  // terabytes costs nothing until the bytes actually exist.
  array.data.reserve(std::min(expected, kMaxUpfrontReserve));
  size_t have = 0;
  while (have < expected) {
    const size_t want = std::min(expected - have, kChunkBytes);
    array.data.resize(have + want);
    ASSIGN_OR_RETURN(const size_t got, file.Read(array.data.data() + have, want));
    have += got;
    if (got < want) break;
  }
  if (have != expected) {
    return DataLossError("IDX file " + path + " is truncated: expected " + std::to_string(expected) +
                         " bytes of data, got " + std::to_string(have));
  }

  // Anything after the data means the header and the file disagree.
  std::vector<uint8_t> scratch(64 << 10);
  size_t trailing = 0;
  while (true) {
    ASSIGN_OR_RETURN(const size_t got, file.Read(scratch.data(), scratch.size()));
    if (got == 0) break;
    trailing += got;
  }
  if (trailing > 0) {
    return DataLossError("IDX file " + path + " has trailing bytes: expected " + std::to_string(expected) +
                         " bytes of data, got " + std::to_string(expected + trailing));
  }
  if (array.type == kIdxInt32) {
    array.ints.resize(elements);
    for (size_t i = 0; i < elements; ++i) {
      const uint8_t* p = array.data.data() + 4 * i;
      array.ints[i] = static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) |
                                           uint32_t{p[3]});
    }
    array.data = {};
  }
  return array;
}

}  // namespace tessera
