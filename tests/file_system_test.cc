// Atomic writes through the file-system seam: a full disk (a short write),
// an fsync error or a rename error at any step leaves the old file as it
// was and no temp file behind; the next write succeeds.
#include "core/file_system.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "tests/faulty_file_system.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using Fault = FaultyFileSystem::Fault;

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

TEST(FileSystemTest, WriteFileAtomicReplacesTheFile) {
  const std::string dir = MakeTempDir("fs");
  ASSERT_OK(WriteFileAtomic(LocalFileSystem(), dir + "/f", "first"));
  ASSERT_OK(WriteFileAtomic(LocalFileSystem(), dir + "/f", "second, longer"));
  EXPECT_EQ(FileText(dir + "/f"), "second, longer");
  EXPECT_EQ(Entries(dir), std::set<std::string>{"f"});
}

TEST(FileSystemTest, AFailureAtAnyStepLeavesTheOldFileAndNoTempFile) {
  for (const auto& [fault, cause] : {std::pair<Fault, std::string>{Fault::kDiskFull, "No space left on device"},
                                     {Fault::kSyncError, "cannot flush"},
                                     {Fault::kRenameError, "cannot rename"}}) {
    const std::string dir = MakeTempDir("fs-fault");
    FaultyFileSystem fs;
    ASSERT_OK(WriteFileAtomic(&fs, dir + "/MANIFEST", "the committed manifest"));
    fs.FailNext(fault, "MANIFEST");
    const Status s = WriteFileAtomic(&fs, dir + "/MANIFEST", "a new manifest that does not fit");
    EXPECT_EQ(fs.struck(), 1);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find(cause), std::string::npos) << s.ToString();
    EXPECT_EQ(FileText(dir + "/MANIFEST"), "the committed manifest");
    EXPECT_EQ(Entries(dir), std::set<std::string>{"MANIFEST"}) << "a temp file was left behind";
    ASSERT_OK(WriteFileAtomic(&fs, dir + "/MANIFEST", "once the fault has passed"));
    EXPECT_EQ(FileText(dir + "/MANIFEST"), "once the fault has passed");
  }
}

TEST(FileSystemTest, ErrorsOfTheLocalFileSystemNameTheFile) {
  const std::string dir = MakeTempDir("fs-missing");
  const Status s = WriteFileAtomic(LocalFileSystem(), dir + "/no/such/dir/f", "x");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(dir + "/no/such/dir/f"), std::string::npos) << s.ToString();
  EXPECT_OK(LocalFileSystem()->RemoveFile(dir + "/not-there"));
  EXPECT_OK(LocalFileSystem()->MakeDirs(dir + "/a/b"));
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/a/b"));
}

}  // namespace
}  // namespace tessera
