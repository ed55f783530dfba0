#include "core/sha256.h"

#include <glog/logging.h>
#include <openssl/evp.h>

namespace tessera {
namespace {

EVP_MD_CTX* Context(void* p) { return static_cast<EVP_MD_CTX*>(p); }

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  // Failures here mean no memory or a broken libcrypto: our invariant, not the caller's input.
  CHECK(context_ != nullptr);
  CHECK_EQ(EVP_DigestInit_ex(Context(context_), EVP_sha256(), nullptr), 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(Context(context_)); }

void Sha256::Update(const void* data, size_t size) {
  CHECK(!finished_) << "Sha256::Update after Finish";
  if (size == 0) return;
  CHECK_EQ(EVP_DigestUpdate(Context(context_), data, size), 1);
}

std::array<uint8_t, 32> Sha256::Finish() {
  CHECK(!finished_) << "Sha256::Finish called twice";
  finished_ = true;
  std::array<uint8_t, 32> digest;
  unsigned int length = 0;
  CHECK_EQ(EVP_DigestFinal_ex(Context(context_), digest.data(), &length), 1);
  CHECK_EQ(length, 32u);
  return digest;
}

std::string Sha256::HexDigest() {
  static const char kHex[] = "0123456789abcdef";
  const std::array<uint8_t, 32> digest = Finish();
  std::string hex(64, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

std::string Sha256Hex(const void* data, size_t size) {
  Sha256 sha;
  sha.Update(data, size);
  return sha.HexDigest();
}

}  // namespace tessera
