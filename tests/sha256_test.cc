#include "core/sha256.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace tessera {
namespace {

std::string HashString(const std::string& s) { return Sha256Hex(s.data(), s.size()); }

TEST(Sha256Test, EmptyMessage) {
  EXPECT_EQ(HashString(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(nullptr, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, Abc) {
  EXPECT_EQ(HashString("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage) {
  EXPECT_EQ(HashString("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, FourBlockMessage) {
  EXPECT_EQ(HashString("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionAInOddChunks) {
  const std::string chunk(997, 'a');
  Sha256 hasher;
  size_t remaining = 1000000;
  size_t sizes[] = {1, 63, 64, 65, 997, 3, 127};
  for (size_t i = 0; remaining > 0; ++i) {
    const size_t n = std::min(remaining, sizes[i % 7]);
    hasher.Update(chunk.data(), n);
    remaining -= n;
  }
  EXPECT_EQ(hasher.HexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, OneMillionAOneShot) {
  const std::string message(1000000, 'a');
  EXPECT_EQ(HashString(message), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Every split point of messages around the padding boundaries gives the one-shot digest.
TEST(Sha256Test, IncrementalEqualsOneShot) {
  for (size_t length : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200}) {
    std::string message(length, '\0');
    for (size_t i = 0; i < length; ++i) message[i] = static_cast<char>(i * 31 + 7);
    const std::string expected = HashString(message);
    for (size_t split = 0; split <= length; ++split) {
      Sha256 hasher;
      hasher.Update(message.data(), split);
      hasher.Update(message.data() + split, length - split);
      ASSERT_EQ(hasher.HexDigest(), expected) << "length " << length << " split " << split;
    }
  }
}

TEST(Sha256Test, FinishMatchesHexDigest) {
  Sha256 hasher;
  hasher.Update("abc", 3);
  const std::array<uint8_t, 32> digest = hasher.Finish();
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[1], 0x78);
  EXPECT_EQ(digest[31], 0xad);
}

}  // namespace
}  // namespace tessera
