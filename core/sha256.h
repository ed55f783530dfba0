// SHA-256 (FIPS 180-4), written for checksumming files and parameters.
#ifndef TESSERA_CORE_SHA256_H_
#define TESSERA_CORE_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera {

// Incremental SHA-256. Feed bytes with Update(), then call Finish() or
// HexDigest() once. Thread-compatible.
class Sha256 {
 public:
  Sha256();

  // Appends `size` bytes at `data` to the message. REQUIRES: not finished.
  void Update(const void* data, size_t size);

  // Pads the message and returns the 32-byte digest. May be called once.
  std::array<uint8_t, 32> Finish();

  // Finish() written as 64 lowercase hex characters.
  std::string HexDigest();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;       // bytes waiting in buffer_
  uint64_t total_bytes_ = 0;  // message length so far
  bool finished_ = false;
};

// The SHA-256 of `size` bytes at `data`, as 64 lowercase hex characters.
std::string Sha256Hex(const void* data, size_t size);

}  // namespace tessera

#endif  // TESSERA_CORE_SHA256_H_
