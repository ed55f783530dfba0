// The limit on a local job's workers (tools/local_job.h): what fits a
// machine, given its cores and available memory, without starting anything.
#include "tools/local_job.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/spec.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(LocalWorkersTest, AtMostFourPerCore) {
  const MachineResources two_cores{.cores = 2, .available_memory_bytes = 0};
  EXPECT_OK(CheckLocalWorkers(8, 100 * kMiB, two_cores));
  const Status refused = CheckLocalWorkers(9, 100 * kMiB, two_cores);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "9 workers are more than this machine can run: at most 8 (4 per core, 2 cores); use fewer, or --force to "
            "start them anyway");
}

TEST(LocalWorkersTest, AsManyAsTheAvailableMemoryHolds) {
  const MachineResources small{.cores = 64, .available_memory_bytes = 1024 * kMiB};
  EXPECT_OK(CheckLocalWorkers(3, 300 * kMiB, small));
  const Status refused = CheckLocalWorkers(4, 300 * kMiB, small);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("at most 3 (4 per core, 64 cores; the 1024 MiB of available memory hold 3, "
                                           "each worker loading the data set, about 300 MiB)"));
}

TEST(LocalWorkersTest, AWorkerNeedsItsDataSetAndABase) {
  const std::string dir = MakeTempDir("local-job");
  WriteTinyImageData(dir, 64, 16);  // 4x4 unsigned-byte images
  auto spec = ParseJobSpec("model { layer { linear { out_features: 10 } } }", "test spec");
  ASSERT_OK(spec.status());
  spec->mutable_data()->set_dir(dir);
  auto bytes = WorkerMemoryBytes(*spec);
  ASSERT_OK(bytes.status());
  EXPECT_EQ(*bytes, 64 * kMiB + 64 * 17 + 16 * 17);
  spec->mutable_data()->set_max_train_examples(10);
  bytes = WorkerMemoryBytes(*spec);
  ASSERT_OK(bytes.status());
  EXPECT_EQ(*bytes, 64 * kMiB + 10 * 17 + 16 * 17);
  spec->mutable_data()->set_dir(dir + "/missing");
  EXPECT_FALSE(WorkerMemoryBytes(*spec).ok());
}

// The scheduler reads a table whole before it listens: the launcher waits
// longer the larger the table's files (sparse files: only their size counts).
TEST(SchedulerListenTimeoutTest, ThirtySecondsPlusATablesFilesAtFiveMegabytesASecond) {
  auto spec = ParseJobSpec("model { layer { linear { out_features: 10 } } }", "test spec");
  ASSERT_OK(spec.status());
  EXPECT_EQ(SchedulerListenTimeoutMs(spec->data()), 30000);  // IDX files
  const std::string dir = MakeTempDir("listen-timeout");
  proto::DataSpec& data = *spec->mutable_data();
  data.set_format(proto::DataSpec::CSV);
  data.set_dir(dir);
  data.add_train_files("a.csv");
  data.add_train_files("b.csv");
  data.add_test_files("test.csv");
  for (const auto& [name, size] : {std::pair{"a.csv", 100'000'000}, {"b.csv", 50'000'000}, {"test.csv", 5'000'000}}) {
    std::ofstream(dir + "/" + name).close();
    std::filesystem::resize_file(dir + "/" + name, size);
  }
  EXPECT_EQ(SchedulerListenTimeoutMs(data), 30000 + 31000);  // 155 MB at 5 MB/s
  data.add_test_files("missing.csv");  // sized as nothing: the scheduler will say what is wrong
  EXPECT_EQ(SchedulerListenTimeoutMs(data), 30000 + 31000);
}

TEST(LocalWorkersTest, ThisMachineHasCoresAndMemory) {
  const MachineResources machine = ThisMachine();
  EXPECT_GE(machine.cores, 1);
  EXPECT_GT(machine.available_memory_bytes, 0u) << "/proc/meminfo has MemAvailable on Linux";
}

// Issue 19 #5: a recovery that went on to succeed showed the lost
// scheduler's log tail (ERROR lines and all) as if the job had failed. A
// recovery says one line, with where the log is; the tail is for a job that
// fails for good.
TEST(LocalJobMessagesTest, ARecoveryIsOneLineThatNamesTheLogAndWhereTheJobRestarts) {
  const std::string dir = MakeTempDir("local-job");
  const RoleFailure lost{"scheduler", 137, dir + "/logs/scheduler.log"};
  EXPECT_EQ(RestartLine(lost, "checkpoint /run/checkpoints/step-000000000300 (step 300)", 1, 3),
            "the scheduler was lost (exited with code 137; log: " + dir +
                "/logs/scheduler.log); restarting from checkpoint /run/checkpoints/step-000000000300 (step 300) "
                "(restart 1 of 3)");
  EXPECT_EQ(RestartLine(RoleFailure{"server-1", 1, "s.log"}, "the start, there is no checkpoint yet", 2, 3),
            "server-1 was lost (exited with code 1; log: s.log); restarting from the start, there is no checkpoint "
            "yet (restart 2 of 3)");
}

TEST(LocalJobMessagesTest, AJobThatFailsForGoodShowsTheEndOfTheFailedRolesLog) {
  const std::string dir = MakeTempDir("local-job");
  const std::string log = dir + "/scheduler.log";
  ASSERT_OK(WriteFileAtomic(log, "I0101 first\nI0101 second\nI0101 third\nE0101 job failed: every worker was lost\n"));
  EXPECT_EQ(FailureMessage(RoleFailure{"scheduler", 1, log}, 2),
            "scheduler exited with code 1; the end of " + log +
                ":\nI0101 third\nE0101 job failed: every worker was lost");
}

}  // namespace
}  // namespace tessera
