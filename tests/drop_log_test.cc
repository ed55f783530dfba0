#include "core/drop_log.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tessera {
namespace {

using ::testing::ElementsAre;

class DropLogTest : public ::testing::Test {
 protected:
  DropLog Make(int burst, int interval_s) {
    DropLogOptions options;
    options.burst = burst;
    options.interval = std::chrono::seconds(interval_s);
    return DropLog(&clock_, options, [this](const std::string& line) { lines_.push_back(line); });
  }

  ManualClock clock_;
  std::vector<std::string> lines_;
};

TEST_F(DropLogTest, LogsTheFirstDropsInFull) {
  DropLog log = Make(/*burst=*/3, /*interval_s=*/60);
  log.Drop("a");
  log.Drop("b");
  log.Drop("c");
  EXPECT_THAT(lines_, ElementsAre("a", "b", "c"));
  EXPECT_EQ(log.unreported(), 0);
}

TEST_F(DropLogTest, ABurstOfJunkWritesABoundedNumberOfLines) {
  DropLog log = Make(/*burst=*/3, /*interval_s=*/60);
  for (int i = 0; i < 40000; ++i) log.Drop("dropped a malformed message " + std::to_string(i));
  EXPECT_EQ(lines_.size(), 3u);
  EXPECT_EQ(log.unreported(), 40000 - 3);
}

TEST_F(DropLogTest, TheNextIntervalReportsWhatWasNotLogged) {
  DropLog log = Make(/*burst=*/2, /*interval_s=*/60);
  for (int i = 0; i < 10; ++i) log.Drop("junk " + std::to_string(i));
  clock_.Advance(std::chrono::seconds(30));
  log.Drop("still the first interval");
  ASSERT_EQ(lines_.size(), 2u);
  clock_.Advance(std::chrono::milliseconds(30500));
  log.Drop("next");
  ASSERT_EQ(lines_.size(), 4u);
  EXPECT_EQ(lines_[2],
            "dropped 9 more messages since the last one logged, 60.5 s ago (at most 2 are logged per 60.0 s)");
  EXPECT_EQ(lines_[3], "next");
  EXPECT_EQ(log.unreported(), 0);
}

TEST_F(DropLogTest, EachIntervalWritesAtMostBurstPlusOneLines) {
  DropLog log = Make(/*burst=*/5, /*interval_s=*/10);
  for (int interval = 0; interval < 100; ++interval) {
    for (int i = 0; i < 1000; ++i) {
      log.Drop("junk");
      clock_.Advance(std::chrono::milliseconds(10));  // 1000 drops take one interval
    }
  }
  EXPECT_LE(lines_.size(), 100u * 6);
  EXPECT_GE(lines_.size(), 100u * 5);
  int64_t logged = 0, reported = 0;
  for (const std::string& line : lines_) {
    if (line == "junk") {
      ++logged;
    } else {
      reported += std::stoll(line.substr(std::string("dropped ").size()));
    }
  }
  // Every drop is logged, or counted in a later line, or (the last interval's) still to be.
  EXPECT_EQ(logged + reported + log.unreported(), 100 * 1000);
}

TEST_F(DropLogTest, AQuietIntervalRestartsTheBurstWithoutACountLine) {
  DropLog log = Make(/*burst=*/2, /*interval_s=*/60);
  log.Drop("a");
  clock_.Advance(std::chrono::minutes(5));
  log.Drop("b");
  log.Drop("c");
  EXPECT_THAT(lines_, ElementsAre("a", "b", "c"));
}

TEST_F(DropLogTest, TheDefaultSinkIsTheLog) {
  DropLog log(&clock_);
  log.Drop("a line for the log");  // must not crash; goes to LOG(WARNING)
  EXPECT_EQ(log.unreported(), 0);
}

}  // namespace
}  // namespace tessera
