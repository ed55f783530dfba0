// Errors no restart can fix are told apart from transient ones (issue 19
// #3): a full disk is RESOURCE_EXHAUSTED wherever Tessera writes, and a role
// failing with it (or with corrupt data) exits kExitPermanent, which the
// local launcher neither replaces nor restarts.
#include <gtest/gtest.h>

#include <memory>

#include "core/file_system.h"
#include "core/status.h"
#include "tests/test_util.h"
#include "tools/command.h"
#include "tools/role_flags.h"

namespace tessera {
namespace {

TEST(PermanentErrorsTest, AFullDiskIsResourceExhausted) {
  // /dev/full answers every write with ENOSPC.
  auto file = LocalFileSystem()->NewWritableFile("/dev/full");
  ASSERT_OK(file.status());
  const Status written = (*file)->Append(std::string(1 << 16, 'x'));
  const Status flushed = written.ok() ? (*file)->Sync() : written;
  EXPECT_EQ(flushed.code(), StatusCode::kResourceExhausted) << flushed.ToString();
  EXPECT_NE(flushed.message().find("/dev/full"), std::string::npos) << flushed.ToString();
}

TEST(PermanentErrorsTest, ARoleExitsWithTheCodeThatSaysWhetherARestartCanHelp) {
  EXPECT_EQ(FinishRole("worker", ResourceExhaustedError("cannot write params.bin: No space left on device")),
            kExitPermanent);
  EXPECT_EQ(FinishRole("worker", DataLossError("a damaged file")), kExitPermanent);
  EXPECT_EQ(FinishRole("worker", InvalidArgumentError("a bad spec")), kExitUsage);
  EXPECT_EQ(FinishRole("worker", UnavailableError("lost the scheduler")), kExitFailure);
  EXPECT_EQ(FinishRole("worker", OkStatus()), kExitOk);
}

}  // namespace
}  // namespace tessera
