// Reading IDX files, the format of MNIST and Fashion-MNIST.
//
// Layout: two zero bytes, a data-type byte, a dimension-count byte, one
// big-endian uint32 per dimension, then the elements in row-major order.
// Data types 0x08 (unsigned byte) and 0x0C (int32, big-endian, for ids
// beyond 255) and 1 to 4 dimensions are supported.
// Files may be gzip-compressed or plain; both are read transparently.
#ifndef TESSERA_CORE_IDX_READER_H_
#define TESSERA_CORE_IDX_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

inline constexpr uint8_t kIdxUnsignedByte = 0x08;
inline constexpr uint8_t kIdxInt32 = 0x0C;
inline constexpr int kIdxMaxDims = 4;

struct IdxArray {
  std::vector<uint32_t> dims;
  uint8_t type = kIdxUnsignedByte;
  std::vector<uint8_t> data;   // type 0x08: product of dims bytes, row-major
  std::vector<int32_t> ints;   // type 0x0C: product of dims values (host order), row-major
};

// Reads and validates the whole file. On failure returns NotFound when the
// file does not exist, InvalidArgument when the header is not a supported IDX
// header (bad magic, data type other than 0x08 and 0x0C, dimension count outside 1..4,
// size overflow), DataLoss when the data is shorter or longer than the header
// says or the gzip stream is corrupt or truncated, FailedPrecondition or
// Unavailable when the file cannot be opened or read. Messages name the file.
StatusOr<IdxArray> ReadIdxFile(const std::string& path);

// Reads only the header (cheap) and returns the dims. Fails as ReadIdxFile
// does for header problems; does not look at the data.
// With `type`, also the data type.
StatusOr<std::vector<uint32_t>> ReadIdxDims(const std::string& path, uint8_t* type = nullptr);

}  // namespace tessera

#endif  // TESSERA_CORE_IDX_READER_H_
