// SHA-256 (FIPS 180-4) for checksumming files and parameters, computed by
// OpenSSL's libcrypto (which uses the CPU's SHA extensions where present:
// about 7x our own portable version on these machines).
#ifndef TESSERA_CORE_SHA256_H_
#define TESSERA_CORE_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera {

// Incremental SHA-256. Feed bytes with Update(), then call Finish() or
// HexDigest() once. Thread-compatible; not copyable.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Appends `size` bytes at `data` to the message. REQUIRES: not finished.
  void Update(const void* data, size_t size);

  // Pads the message and returns the 32-byte digest. May be called once.
  std::array<uint8_t, 32> Finish();

  // Finish() written as 64 lowercase hex characters.
  std::string HexDigest();

 private:
  void* context_;  // EVP_MD_CTX, kept out of this header
  bool finished_ = false;
};

// The SHA-256 of `size` bytes at `data`, as 64 lowercase hex characters.
std::string Sha256Hex(const void* data, size_t size);

}  // namespace tessera

#endif  // TESSERA_CORE_SHA256_H_
