// The Criteo click-log layout (core/criteo_format.h) over headerless,
// unquoted CsvReader files, and bench/make_criteo's files read back whole.
#include "core/criteo_format.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/child_process.h"

namespace tessera {
namespace {

// A line of the layout: label, the 13 integers, the 26 categorical values.
std::string Line(const std::string& label, const std::vector<std::string>& integers,
                 const std::vector<std::string>& categorical) {
  std::string line = label;
  for (int i = 0; i < kCriteoIntegerFields; ++i) {
    line += '\t';
    if (i < static_cast<int>(integers.size())) line += integers[i];
  }
  for (int c = 0; c < kCriteoCategoricalFields; ++c) {
    line += '\t';
    if (c < static_cast<int>(categorical.size())) line += categorical[c];
  }
  line += '\n';
  return line;
}

// Every example of `path`, or the first error.
StatusOr<std::vector<CriteoExample>> ReadExamples(const std::string& path, std::vector<std::string>* strings) {
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, CsvReader::Open(path, CriteoCsvOptions()));
  std::vector<CriteoExample> examples;
  CsvRecord record;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader->Next(&record));
    if (!more) return examples;
    CriteoExample example;
    RETURN_IF_ERROR(ParseCriteoRecord(*reader, record, &example));
    for (std::string_view c : example.categorical) strings->emplace_back(c);  // views die with the record
    examples.push_back(example);
  }
}

TEST(CriteoFormatTest, ColumnNamesAreTheChallengesOnes) {
  const std::vector<std::string>& names = CriteoColumnNames();
  ASSERT_EQ(names.size(), 40u);
  EXPECT_EQ(names[0], "label");
  EXPECT_EQ(names[1], "I1");
  EXPECT_EQ(names[13], "I13");
  EXPECT_EQ(names[14], "C1");
  EXPECT_EQ(names[39], "C26");
}

TEST(CriteoFormatTest, ReadsLabelsIntegersAndCategoricalValuesWithMissingOnes) {
  ScopedTestDir dir;
  const std::string text = Line("1", {"5", "-1", "", "12"}, {"68fd1e64", "", "05DB9164"}) + Line("0", {}, {});
  for (const bool gzip : {false, true}) {
    const std::string path = dir.File(gzip ? "day.tsv.gz" : "day.tsv");
    gzip ? WriteGzText(path, text) : WriteText(path, text);
    std::vector<std::string> strings;
    StatusOr<std::vector<CriteoExample>> examples = ReadExamples(path, &strings);
    ASSERT_OK(examples.status());
    ASSERT_EQ(examples->size(), 2u);
    const CriteoExample& first = (*examples)[0];
    EXPECT_EQ(first.label, 1);
    EXPECT_EQ(first.integers[0], std::optional<int64_t>(5));
    EXPECT_EQ(first.integers[1], std::optional<int64_t>(-1));  // Criteo's I2 goes below 0
    EXPECT_FALSE(first.integers[2].has_value());
    EXPECT_EQ(first.integers[3], std::optional<int64_t>(12));
    EXPECT_EQ(strings[0], "68fd1e64");
    EXPECT_EQ(strings[1], "");      // missing
    EXPECT_EQ(strings[2], "05DB9164");  // kept as it is: the case is part of the value
    EXPECT_EQ((*examples)[1].label, 0);
    for (const auto& x : (*examples)[1].integers) EXPECT_FALSE(x.has_value());
  }
}

TEST(CriteoFormatTest, BadFieldsAreOneLineNamingTheLineAndTheColumn) {
  ScopedTestDir dir;
  const std::string path = dir.File("bad.tsv");
  std::vector<std::string> strings;
  WriteText(path, Line("1", {}, {}) + Line("2", {}, {}));
  EXPECT_EQ(ReadExamples(path, &strings).status().message(), path + ":2: column \"label\": expected 0 or 1, got \"2\"");
  WriteText(path, Line("0", {"1", "2", "3.5"}, {}));
  EXPECT_EQ(ReadExamples(path, &strings).status().message(),
            path + ":1: column \"I3\": expected an integer (or nothing, for a missing value), got \"3.5\"");
  WriteText(path, Line("0", {"99999999999999999999"}, {}));
  EXPECT_EQ(ReadExamples(path, &strings).status().code(), StatusCode::kInvalidArgument);
  // A categorical value is hex digits: a word, a sign or a 17th digit is not.
  WriteText(path, Line("0", {}, {"68fd1e64", "cafe babe"}));
  EXPECT_EQ(ReadExamples(path, &strings).status().message(),
            path + ":1: column \"C2\": expected up to 16 hex digits (or nothing, for a missing value), got "
                   "\"cafe babe\"");
  WriteText(path, Line("0", {}, {"-1"}));
  EXPECT_EQ(ReadExamples(path, &strings).status().code(), StatusCode::kInvalidArgument);
  WriteText(path, Line("0", {}, {"0123456789abcdef0"}));
  EXPECT_EQ(ReadExamples(path, &strings).status().code(), StatusCode::kInvalidArgument);
  WriteText(path, Line("0", {}, {"0123456789ABCDEF"}));
  EXPECT_OK(ReadExamples(path, &strings).status());
  WriteText(path, "1\t2\t3\n");
  EXPECT_EQ(ReadExamples(path, &strings).status().message(), path + ":1: 3 fields, expected 40 (one per column)");
}

// bench/make_criteo's files: every line in the layout, the same seeds the
// same bytes, another rows_seed other rows, and clicks at the rate its model plants.
TEST(CriteoFormatTest, MakeCriteoWritesTheLayoutReproducibly) {
  ScopedTestDir dir;
  const auto make = [&](const std::string& name, int rows_seed) {
    auto child = ChildProcess::Start("make_criteo",
                                     {TESSERA_MAKE_CRITEO, "--rows", "3000", "--seed", "3", "--rows_seed",
                                      std::to_string(rows_seed), "--vocab", "5000", "--out", dir.File(name)},
                                     dir.File(name + ".log"));
    ASSERT_OK(child.status());
    ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(dir.File(name + ".log"));
  };
  make("a.tsv.gz", 0);
  make("b.tsv", 0);
  make("c.tsv", 1);
  // The program names the achievable figures of its planted model.
  EXPECT_NE(FileText(dir.File("a.tsv.gz.log")).find("the planted model: AUC 0."), std::string::npos);
  std::vector<std::string> a_strings, b_strings, c_strings;
  StatusOr<std::vector<CriteoExample>> a = ReadExamples(dir.File("a.tsv.gz"), &a_strings);
  StatusOr<std::vector<CriteoExample>> b = ReadExamples(dir.File("b.tsv"), &b_strings);
  StatusOr<std::vector<CriteoExample>> c = ReadExamples(dir.File("c.tsv"), &c_strings);
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  ASSERT_OK(c.status());
  ASSERT_EQ(a->size(), 3000u);
  ASSERT_EQ(b->size(), 3000u);
  EXPECT_EQ(a_strings, b_strings);  // gzip'd or not, the same rows
  EXPECT_NE(a_strings, c_strings);
  int clicks = 0, missing = 0;
  for (const CriteoExample& e : *a) clicks += e.label;
  for (const std::string& s : a_strings) {
    missing += s.empty();
    if (s.empty()) continue;
    EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos) << s;
    EXPECT_EQ(s.size(), 8u) << s;
  }
  EXPECT_GT(clicks, 3000 * 0.2);  // about 0.28 planted
  EXPECT_LT(clicks, 3000 * 0.36);
  EXPECT_GT(missing, 0);
}

}  // namespace
}  // namespace tessera
