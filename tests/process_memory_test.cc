// The peak resident set size from /proc/self/status: the VmHWM line parsed,
// and this process's peak growing when it touches memory.
#include "core/process_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace tessera {
namespace {

// A /proc/<pid>/status text as Linux writes it (fields abridged).
constexpr char kStatus[] =
    "Name:\ttessera\n"
    "State:\tS (sleeping)\n"
    "VmPeak:\t  912340 kB\n"
    "VmSize:\t  812340 kB\n"
    "VmHWM:\t  123456 kB\n"
    "VmRSS:\t   99999 kB\n"
    "Threads:\t4\n";

TEST(ProcessMemoryTest, ReadsVmHwmInBytes) {
  auto peak = ParsePeakResidentBytes(kStatus);
  ASSERT_TRUE(peak.ok()) << peak.status().ToString();
  EXPECT_EQ(*peak, uint64_t{123456} * 1024);
}

TEST(ProcessMemoryTest, TheLastLineNeedsNoNewline) {
  auto peak = ParsePeakResidentBytes("VmRSS:\t 1 kB\nVmHWM:\t 7 kB");
  ASSERT_TRUE(peak.ok()) << peak.status().ToString();
  EXPECT_EQ(*peak, 7u * 1024);
}

TEST(ProcessMemoryTest, NoVmHwmLineIsNotFound) {
  EXPECT_EQ(ParsePeakResidentBytes("Name:\tx\nVmRSS:\t 10 kB\n").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParsePeakResidentBytes("").status().code(), StatusCode::kNotFound);
  // Only a line that starts with the field counts.
  EXPECT_EQ(ParsePeakResidentBytes("Note: VmHWM: 5 kB\n").status().code(), StatusCode::kNotFound);
}

TEST(ProcessMemoryTest, AValueNotInKilobytesIsDataLoss) {
  for (const char* text : {"VmHWM:\t 12 MB\n", "VmHWM:\t kB\n", "VmHWM:\t -5 kB\n", "VmHWM:\t 12\n",
                           "VmHWM:\t 99999999999999999999 kB\n", "VmHWM:\t 1 kB x\n"}) {
    auto peak = ParsePeakResidentBytes(text);
    EXPECT_EQ(peak.status().code(), StatusCode::kDataLoss) << text;
    EXPECT_NE(peak.status().message().find("VmHWM"), std::string::npos) << peak.status().message();
  }
}

// Touching more bytes than the peak so far makes it at least that many: the
// whole buffer is resident once written (this test assumes no swapping).
TEST(ProcessMemoryTest, ThisProcessPeakGrowsWithTouchedMemory) {
  auto before = PeakResidentBytes();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_GT(*before, 0u);
  const size_t size = *before + (size_t{64} << 20);
  {
    std::vector<char> buffer(size);
    std::memset(buffer.data(), 1, buffer.size());
    volatile char last = buffer.back();
    (void)last;
  }
  auto after = PeakResidentBytes();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GE(*after, size);  // and it stays there after the buffer is freed
}

}  // namespace
}  // namespace tessera
