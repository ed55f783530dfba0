// CURVE key files (core/curve_keys.h): what keygen writes, and each mistake
// in a key file as one InvalidArgument naming the file, line and column.
#include "core/curve_keys.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class CurveKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
    auto pair = GenerateCurveKeyPair();
    ASSERT_OK(pair.status());
    pair_ = *pair;
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.File(name);
    std::ofstream(path) << text;
    return path;
  }

  ScopedTestDir dir_;
  CurveKeyPair pair_;
};

int ModeOf(const std::string& path) {
  struct stat st = {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

TEST_F(CurveKeysTest, GeneratesFortyCharacterZ85Keys) {
  EXPECT_EQ(pair_.public_key.size(), kCurveKeyChars);
  EXPECT_EQ(pair_.secret_key.size(), kCurveKeyChars);
  EXPECT_NE(pair_.public_key, pair_.secret_key);
}

TEST_F(CurveKeysTest, WritesASecretFileOnlyItsOwnerReadsAndAPublicFile) {
  ASSERT_OK(WriteCurveKeyPair(pair_, dir_.File("keys"), "worker-1"));
  const std::string secret = dir_.File("keys/worker-1.secret");
  const std::string pub = dir_.File("keys/worker-1.pub");
  EXPECT_EQ(FileText(secret), "curve-secret-key " + pair_.secret_key + "\n");
  EXPECT_EQ(FileText(pub), "curve-public-key " + pair_.public_key + " worker-1\n");
  EXPECT_EQ(ModeOf(secret), 0600);
  EXPECT_EQ(ModeOf(pub) & 0600, 0600);
}

TEST_F(CurveKeysTest, ReadsBackThePairAndDerivesThePublicHalf) {
  ASSERT_OK(WriteCurveKeyPair(pair_, dir_.path(), "node"));
  auto read = ReadCurveSecretKey(dir_.File("node.secret"));
  ASSERT_OK(read.status());
  EXPECT_EQ(read->secret_key, pair_.secret_key);
  EXPECT_EQ(read->public_key, pair_.public_key);
  auto pub = ReadCurvePublicKey(dir_.File("node.pub"));
  ASSERT_OK(pub.status());
  EXPECT_EQ(*pub, pair_.public_key);
}

TEST_F(CurveKeysTest, NeverOverwritesAKey) {
  ASSERT_OK(WriteCurveKeyPair(pair_, dir_.path(), "node"));
  auto other = GenerateCurveKeyPair();
  ASSERT_OK(other.status());
  Status again = WriteCurveKeyPair(*other, dir_.path(), "node");
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.message(), HasSubstr("node.secret exists"));
  EXPECT_EQ(FileText(dir_.File("node.secret")), "curve-secret-key " + pair_.secret_key + "\n");
}

TEST_F(CurveKeysTest, RefusesANameThatIsNotAPlainFileName) {
  for (const std::string name : {"", "../x", "a/b", "a b", ".."}) {
    EXPECT_EQ(WriteCurveKeyPair(pair_, dir_.path(), name).code(), StatusCode::kInvalidArgument) << name;
  }
}

TEST_F(CurveKeysTest, AMissingFileIsNamed) {
  auto read = ReadCurveSecretKey(dir_.File("absent.secret"));
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("absent.secret: cannot read the key file"));
}

TEST_F(CurveKeysTest, APublicKeyWhereASecretOneIsNeededIsNamed) {
  ASSERT_OK(WriteCurveKeyPair(pair_, dir_.path(), "node"));
  auto read = ReadCurveSecretKey(dir_.File("node.pub"));
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr("node.pub:1:1: expected curve-secret-key, got curve-public-key (a public key where a secret "
                        "key is needed)"));
  auto pub = ReadCurvePublicKey(dir_.File("node.secret"));
  EXPECT_THAT(pub.status().message(), HasSubstr("node.secret:1:1: expected curve-public-key, got curve-secret-key"));
}

TEST_F(CurveKeysTest, AKeyOfTheWrongLengthIsNamedWithItsColumn) {
  const std::string path = Write("short.secret", "\n  curve-secret-key " + pair_.secret_key.substr(1) + "\n");
  auto read = ReadCurveSecretKey(path);
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("short.secret:2:20: a CURVE key is 40 Z85 characters, got 39"));
}

TEST_F(CurveKeysTest, AKeyThatIsNotZ85IsNamedAtTheBadCharacter) {
  std::string key = pair_.secret_key;
  key[5] = '~';
  auto read = ReadCurveSecretKey(Write("bad.secret", "curve-secret-key " + key + "\n"));
  EXPECT_THAT(read.status().message(), HasSubstr("bad.secret:1:23: the key is not Z85 text (character '~')"));
}

TEST_F(CurveKeysTest, AnEmptyOrUnknownFileIsNamed) {
  EXPECT_THAT(ReadCurveSecretKey(Write("empty", "# nothing\n")).status().message(),
              HasSubstr("empty:1:1: expected curve-secret-key KEY, the file has no key"));
  EXPECT_THAT(ReadCurveSecretKey(Write("raw", pair_.secret_key + "\n")).status().message(),
              HasSubstr("raw:1:1: expected curve-secret-key, got a word of 40 characters"));
  EXPECT_THAT(ReadCurveSecretKey(Write("raw", pair_.secret_key + "\n")).status().message(),
              Not(HasSubstr(pair_.secret_key)));
  EXPECT_THAT(ReadCurveSecretKey(Write("other", "secret " + pair_.secret_key + "\n")).status().message(),
              HasSubstr("other:1:1: expected curve-secret-key, got 'secret'"));
  EXPECT_THAT(ReadCurveSecretKey(Write("two", "curve-secret-key " + pair_.secret_key + "\ncurve-secret-key " +
                                                  pair_.secret_key + "\n"))
                  .status()
                  .message(),
              HasSubstr("two:2:1: expected one key line, found another"));
}

TEST_F(CurveKeysTest, AnAllowListIsPublicKeyLinesWithNames) {
  auto other = GenerateCurveKeyPair();
  ASSERT_OK(other.status());
  const std::string path = Write("allowed", "# the cluster\ncurve-public-key " + pair_.public_key +
                                                " worker-0\n\ncurve-public-key " + other->public_key + "\n");
  auto allowed = ReadCurveAllowList(path);
  ASSERT_OK(allowed.status());
  ASSERT_EQ(allowed->size(), 2u);
  EXPECT_EQ(allowed->at(pair_.public_key), "worker-0");
  EXPECT_EQ(allowed->at(other->public_key), "");
}

TEST_F(CurveKeysTest, AnAllowListWithASecretKeyOrNoKeyIsRefused) {
  auto with_secret = ReadCurveAllowList(Write("a", "curve-secret-key " + pair_.secret_key + "\n"));
  EXPECT_THAT(with_secret.status().message(), HasSubstr("a:1:1: expected curve-public-key, got curve-secret-key"));
  auto empty = ReadCurveAllowList(Write("b", "\n# none\n"));
  EXPECT_THAT(empty.status().message(), HasSubstr("b:1:1: the allow-list has no curve-public-key line"));
}

}  // namespace
}  // namespace tessera
