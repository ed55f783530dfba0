// Reading IDX files, the format of MNIST and Fashion-MNIST.
//
// Layout: two zero bytes, a data-type byte, a dimension-count byte, one
// big-endian uint32 per dimension, then the elements in row-major order.
// Only data type 0x08 (unsigned byte) and 1 to 4 dimensions are supported.
// Files may be gzip-compressed or plain; both are read transparently.
#ifndef TESSERA_CORE_IDX_READER_H_
#define TESSERA_CORE_IDX_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

inline constexpr uint8_t kIdxUnsignedByte = 0x08;
inline constexpr int kIdxMaxDims = 4;

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;  // product of dims bytes, row-major
};

// Reads and validates the whole file. On failure returns NotFound when the
// file does not exist, InvalidArgument when the header is not a supported IDX
// header (bad magic, data type other than 0x08, dimension count outside 1..4,
// size overflow), DataLoss when the data is shorter or longer than the header
// says or the gzip stream is corrupt or truncated, FailedPrecondition or
// Unavailable when the file cannot be opened or read. Messages name the file.
StatusOr<IdxArray> ReadIdxFile(const std::string& path);

// Reads only the header (cheap) and returns the dims. Fails as ReadIdxFile
// does for header problems; does not look at the data.
StatusOr<std::vector<uint32_t>> ReadIdxDims(const std::string& path);

}  // namespace tessera

#endif  // TESSERA_CORE_IDX_READER_H_
