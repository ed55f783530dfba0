// The vocabulary counted in bounded memory (core/vocabulary_counter,
// core/vocabulary_run): spilled runs merged back give exactly what counting
// everything in memory gives, the runs' files go with the counter (a full
// disk included), and a run that does not read back is DataLoss, never a
// crash.
#include "core/vocabulary_counter.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/vocabulary_run.h"
#include "tests/faulty_file_system.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

proto::VocabularySpec Vocabulary(int max_size, int64_t min_count) {
  proto::VocabularySpec spec;
  spec.set_max_size(max_size);
  spec.set_min_count(min_count);
  return spec;
}

// The vocabulary by the rule itself: every value counted in one map, sorted
// by descending count then bytewise, cut to max_size.
std::vector<std::string> ReferenceVocabulary(const std::vector<std::string>& fields,
                                             const proto::VocabularySpec& spec) {
  std::map<std::string, int64_t> counts;
  for (const std::string& f : fields) {
    if (!f.empty()) ++counts[f];
  }
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [value, count] : counts) {
    if (count >= spec.min_count()) kept.emplace_back(value, count);
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (spec.max_size() > 0 && static_cast<int64_t>(kept.size()) > spec.max_size()) kept.resize(spec.max_size());
  std::vector<std::string> values;
  for (const auto& [value, count] : kept) values.push_back(value);
  return values;
}

// Fields with many repeats: a skewed pick from `distinct` values of 1 to 4
// random bytes (any byte, so bytewise order matters: 0x80 sorts after 'z'),
// and some empty ones.
std::vector<std::string> RandomFields(std::mt19937* rng, int count, int distinct) {
  std::vector<std::string> values(distinct);
  for (std::string& v : values) {
    const int length = 1 + static_cast<int>((*rng)() % 4);
    for (int i = 0; i < length; ++i) v.push_back(static_cast<char>((*rng)() % 256));
  }
  std::vector<std::string> fields;
  for (int i = 0; i < count; ++i) {
    if ((*rng)() % 10 == 0) {
      fields.emplace_back();
      continue;
    }
    // The square of a uniform draw: low indexes come far more often.
    const double u = std::uniform_real_distribution<double>(0, 1)(*rng);
    fields.push_back(values[static_cast<size_t>(u * u * distinct)]);
  }
  return fields;
}

TEST(VocabularyCounterTest, SpilledRunsGiveWhatCountingInMemoryGives) {
  ScopedTestDir dir;
  std::mt19937 rng(17);
  int spilled = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const std::vector<std::string> fields = RandomFields(&rng, 1 + static_cast<int>(rng() % 400),
                                                         1 + static_cast<int>(rng() % 120));
    VocabularyCounterOptions options;
    options.max_distinct_in_memory = 1 + static_cast<int64_t>(rng() % 8);  // tiny: many runs
    options.spill_parent = dir.path();
    VocabularyCounter counter(options);
    for (const std::string& f : fields) ASSERT_OK(counter.Add(f));
    spilled += counter.runs() > 1;
    for (const proto::VocabularySpec& spec :
         {Vocabulary(0, 1), Vocabulary(0, 2), Vocabulary(0, 5), Vocabulary(1, 1), Vocabulary(3, 1), Vocabulary(7, 2),
          Vocabulary(50, 1), Vocabulary(1000, 3)}) {
      auto built = counter.Build(spec, "c");
      ASSERT_OK(built.status());
      EXPECT_EQ(*built, ReferenceVocabulary(fields, spec))
          << "trial " << trial << ", max_size " << spec.max_size() << ", min_count " << spec.min_count() << ", "
          << counter.runs() << " runs";
    }
  }
  EXPECT_GT(spilled, 40);  // the merge was exercised, not the map alone
}

TEST(VocabularyCounterTest, ACountSplitAcrossRunsIsSummed) {
  ScopedTestDir dir;
  VocabularyCounterOptions options;
  options.max_distinct_in_memory = 2;
  options.spill_parent = dir.path();
  VocabularyCounter counter(options);
  // Runs {x 1, y 2, z 1} and {a 1, x 1, z 1}, then {b 1, x 1} in memory:
  // "x" (3 in all) comes before "y" (2 in one run) only when its counts
  // are summed across the three.
  for (const char* v : {"x", "y", "y", "z", "z", "x", "a", "b", "x"}) ASSERT_OK(counter.Add(v));
  EXPECT_EQ(counter.runs(), 2);
  auto built = counter.Build(Vocabulary(2, 1), "c");
  ASSERT_OK(built.status());
  EXPECT_THAT(*built, ElementsAre("x", "y"));
}

TEST(VocabularyCounterTest, RunsAreRemovedWithTheCounter) {
  ScopedTestDir dir;
  std::string spill_dir;
  {
    VocabularyCounterOptions options;
    options.max_distinct_in_memory = 1;
    options.spill_parent = dir.path();
    VocabularyCounter counter(options);
    EXPECT_EQ(counter.spill_dir(), "");  // nothing made before it is needed
    for (const char* v : {"a", "b", "c", "d"}) ASSERT_OK(counter.Add(v));  // runs {a, b}, {c, d}
    spill_dir = counter.spill_dir();
    EXPECT_TRUE(FileExists(spill_dir + "/run-0"));
    EXPECT_TRUE(FileExists(spill_dir + "/run-1"));
    VocabularyCounter moved = std::move(counter);  // the runs go with it
    auto built = moved.Build(Vocabulary(0, 1), "c");
    ASSERT_OK(built.status());
    EXPECT_THAT(*built, ElementsAre("a", "b", "c", "d"));
    EXPECT_TRUE(FileExists(spill_dir + "/run-0"));
  }
  EXPECT_FALSE(FileExists(spill_dir));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(VocabularyCounterTest, AFullDiskIsAnErrorNamingTheRunAndLeavesNothing) {
  ScopedTestDir dir;
  FaultyFileSystem faulty;
  faulty.FailNext(FaultyFileSystem::Fault::kDiskFull, "run-1");
  {
    VocabularyCounterOptions options;
    options.max_distinct_in_memory = 1;
    options.spill_parent = dir.path();
    options.fs = &faulty;
    VocabularyCounter counter(options);
    for (const char* v : {"a", "b", "c"}) ASSERT_OK(counter.Add(v));  // run-0: a, b
    const Status full = counter.Add("d");
    EXPECT_EQ(full.code(), StatusCode::kUnavailable);
    EXPECT_THAT(full.message(), HasSubstr(counter.spill_dir() + "/run-1: No space left on device"));
  }
  EXPECT_EQ(faulty.struck(), 1);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(VocabularyCounterTest, MinCountAppliesToTheSummedCounts) {
  // Runs {a 1, b 1} and {b 1, c 1}: "b" is seen twice only in all.
  ScopedTestDir dir;
  VocabularyCounterOptions options;
  options.max_distinct_in_memory = 1;
  options.spill_parent = dir.path();
  VocabularyCounter counter(options);
  for (const char* v : {"b", "a", "b", "c"}) ASSERT_OK(counter.Add(v));
  auto built = counter.Build(Vocabulary(0, 2), "city");
  ASSERT_OK(built.status());
  EXPECT_THAT(*built, ElementsAre("b"));
}

// ------------------------------------------------------------ the run file

std::string ValidRun(const std::string& path) {
  const std::vector<VocabularyEntry> entries = {{"Lima", 2}, {"Oslo", 7}, {"Rome", 1}};
  EXPECT_OK(WriteVocabularyRun(LocalFileSystem(), path, entries));
  return FileText(path);
}

// Reads every entry of the run at `path`; the first error, else OK.
Status ReadAll(const std::string& path, std::vector<std::pair<std::string, int64_t>>* out = nullptr) {
  ASSIGN_OR_RETURN(std::unique_ptr<VocabularyRunReader> reader, VocabularyRunReader::Open(path));
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader->Next());
    if (!more) return OkStatus();
    if (out != nullptr) out->emplace_back(reader->value(), reader->count());
  }
}

TEST(VocabularyRunTest, ReadsBackWhatWasWritten) {
  ScopedTestDir dir;
  ValidRun(dir.File("run"));
  std::vector<std::pair<std::string, int64_t>> entries;
  ASSERT_OK(ReadAll(dir.File("run"), &entries));
  EXPECT_THAT(entries, ElementsAre(std::pair<std::string, int64_t>{"Lima", 2},
                                   std::pair<std::string, int64_t>{"Oslo", 7},
                                   std::pair<std::string, int64_t>{"Rome", 1}));
  EXPECT_EQ(ReadAll(dir.File("missing")).code(), StatusCode::kNotFound);
}

TEST(VocabularyRunTest, EveryTruncationIsDataLoss) {
  ScopedTestDir dir;
  const std::string bytes = ValidRun(dir.File("run"));
  for (size_t size = 0; size < bytes.size(); ++size) {
    WriteText(dir.File("cut"), bytes.substr(0, size));
    const Status s = ReadAll(dir.File("cut"));
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << size << " bytes: " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(dir.File("cut"))) << size;
  }
  WriteText(dir.File("long"), bytes + "x");
  EXPECT_THAT(ReadAll(dir.File("long")).message(), HasSubstr("1 bytes after the last entry"));
}

TEST(VocabularyRunTest, BrokenFieldsAreNamed) {
  ScopedTestDir dir;
  const std::string bytes = ValidRun(dir.File("run"));
  // Offsets: magic 0, entry count 4, then "Lima": length 12, bytes 16, count 20; "Oslo": length 28, bytes 32.
  const auto with = [&](size_t offset, const std::string& replacement) {
    std::string changed = bytes;
    changed.replace(offset, replacement.size(), replacement);
    WriteText(dir.File("bad"), changed);
    return ReadAll(dir.File("bad"));
  };
  EXPECT_THAT(with(0, "TVR2").message(), HasSubstr("bad magic"));
  EXPECT_THAT(with(4, std::string("\xff\xff\xff\xff", 4)).message(), HasSubstr("entries cannot fit"));
  EXPECT_THAT(with(12, std::string("\xff\xff\xff\x7f", 4)).message(), HasSubstr("bytes where"));
  EXPECT_THAT(with(12, std::string("\0\0\0\0", 4)).message(), HasSubstr("an empty value"));
  EXPECT_THAT(with(20, std::string(8, '\0')).message(), HasSubstr("a count of 0"));
  EXPECT_THAT(with(20, std::string(8, '\xff')).message(), HasSubstr("a count of 18446744073709551615"));
  EXPECT_THAT(with(32, "Lima").message(), HasSubstr("values out of order"));
  EXPECT_THAT(with(32, "Kima").message(), HasSubstr("values out of order"));
}

TEST(VocabularyRunTest, RandomBytesNeverCrash) {
  ScopedTestDir dir;
  const std::string bytes = ValidRun(dir.File("run"));
  std::mt19937 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    std::string changed = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) changed[rng() % changed.size()] = static_cast<char>(rng() % 256);
    WriteText(dir.File("random"), changed);
    const Status s = ReadAll(dir.File("random"));
    if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
    }
  }
}

}  // namespace
}  // namespace tessera
