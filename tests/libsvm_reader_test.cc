#include "core/libsvm_reader.h"

#include <zlib.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/dataset.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr char kMaxIndex[] = "18446744073709551615";  // 2^64 - 1

using TempDir = ScopedTestDir;

// The shortest text that reads back as `value`.
std::string Shortest(float value) {
  char text[32];
  const auto result = std::to_chars(text, text + sizeof(text), value);
  return std::string(text, result.ptr);
}

// A record as canonical text: "label [qid:N] index:value ...".
std::string Show(const LibsvmRecord& record) {
  // Appended piece by piece: " " + std::string trips GCC 12's -Wrestrict.
  std::string text = Shortest(record.label);
  if (record.qid.has_value()) text += " qid:" + std::to_string(*record.qid);
  for (const LibsvmFeature& feature : record.features) {
    text += ' ';
    text += std::to_string(feature.index);
    text += ':';
    text += Shortest(feature.value);
  }
  return text;
}

// Every record (as Show writes it), or the first error.
StatusOr<std::vector<std::string>> ReadAll(LibsvmReader& reader, std::vector<int64_t>* lines = nullptr,
                                           std::vector<uint64_t>* offsets = nullptr) {
  std::vector<std::string> records;
  LibsvmRecord record;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&record));
    if (!more) return records;
    records.push_back(Show(record));
    if (lines != nullptr) lines->push_back(record.line);
    if (offsets != nullptr) offsets->push_back(record.offset);
  }
}

// Writes `text` and reads it whole.
StatusOr<std::vector<std::string>> ReadText(const std::string& path, const std::string& text,
                                            const LibsvmOptions& options = {}) {
  WriteText(path, text);
  ASSIGN_OR_RETURN(std::unique_ptr<LibsvmReader> reader, LibsvmReader::Open(path, options));
  return ReadAll(*reader);
}

// The first error reading `text` (OK when there is none).
Status ErrorOf(const std::string& path, const std::string& text, const LibsvmOptions& options = {}) {
  return ReadText(path, text, options).status();
}

using Strings = std::vector<std::string>;

TEST(LibsvmReaderTest, ReadsLabelsFeaturesLinesAndOffsets) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  WriteText(path, "1 1:0.5 3:-2 10:1e3\n-1 2:7\n+1\n2.5 4:.25\n");
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->path(), path);
  LibsvmRecord record;
  StatusOr<bool> more = (*reader)->Next(&record);
  ASSERT_OK(more.status());
  ASSERT_TRUE(*more);
  EXPECT_EQ(record.label, 1.0f);
  EXPECT_FALSE(record.qid.has_value());
  EXPECT_EQ(record.features, (std::vector<LibsvmFeature>{{1, 0.5f}, {3, -2.0f}, {10, 1000.0f}}));
  EXPECT_EQ(record.line, 1);
  EXPECT_EQ(record.offset, 0u);

  std::vector<int64_t> lines;
  std::vector<uint64_t> offsets;
  StatusOr<Strings> rest = ReadAll(**reader, &lines, &offsets);
  ASSERT_OK(rest.status());
  EXPECT_EQ(*rest, (Strings{"-1 2:7", "1", "2.5 4:0.25"}));  // "+1" alone: a record of all zeros
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(offsets, (std::vector<uint64_t>{20, 27, 30}));
  more = (*reader)->Next(&record);  // the end stays the end
  ASSERT_OK(more.status());
  EXPECT_FALSE(*more);
}

TEST(LibsvmReaderTest, SkipsBlankAndCommentLinesAndAcceptsAnyLineEnd) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  WriteText(path,
            "# written by hand\n"
            "\n"
            " \t \n"
            "1 2:3 # a trailing comment: 9:9\r\n"
            "  -1\t4:5  6:7\t\r\n"
            "   # an indented comment\n"
            "0 1:1#touching\n"
            "\r\n"
            "3 5:6");  // no final newline
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path);
  ASSERT_OK(reader.status());
  std::vector<int64_t> lines;
  StatusOr<Strings> records = ReadAll(**reader, &lines);
  ASSERT_OK(records.status());
  EXPECT_EQ(*records, (Strings{"1 2:3", "-1 4:5 6:7", "0 1:1", "3 5:6"}));
  EXPECT_EQ(lines, (std::vector<int64_t>{4, 5, 7, 9}));

  for (const std::string text : {"", "\n\n", "# only\n# comments", "\xEF\xBB\xBF"}) {
    StatusOr<Strings> none = ReadText(path, text);
    ASSERT_OK(none.status());
    EXPECT_TRUE(none->empty()) << text;
  }
}

TEST(LibsvmReaderTest, SkipsAByteOrderMark) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  WriteText(path, "\xEF\xBB\xBF" "1 1:1\n2 2:2\n");
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path);
  ASSERT_OK(reader.status());
  std::vector<uint64_t> offsets;
  StatusOr<Strings> records = ReadAll(**reader, nullptr, &offsets);
  ASSERT_OK(records.status());
  EXPECT_EQ(*records, (Strings{"1 1:1", "2 2:2"}));
  EXPECT_EQ(offsets, (std::vector<uint64_t>{3, 9}));  // offsets count the mark's 3 bytes
}

TEST(LibsvmReaderTest, AQidMayFollowTheLabel) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  StatusOr<Strings> records =
      ReadText(path, "3 qid:1 1:1 2:0.5\n2 qid:1 2:0.5\n1 1:1\n0 qid:" + std::string(kMaxIndex) + "\n");
  ASSERT_OK(records.status());
  EXPECT_EQ(*records,
            (Strings{"3 qid:1 1:1 2:0.5", "2 qid:1 2:0.5", "1 1:1", "0 qid:" + std::string(kMaxIndex)}));

  const std::string integers = std::string("expected an integer from 0 to ") + kMaxIndex;
  for (const std::string qid : {"x", "", "-1", "+1", "1.5", "18446744073709551616"}) {
    EXPECT_EQ(ErrorOf(path, "1 qid:" + qid + " 1:1\n").message(),
              path + ":1: qid: " + integers + ", got \"" + qid + "\"");
  }
  EXPECT_EQ(ErrorOf(path, "1 1:1 qid:2\n").message(),
            path + ":1: expected a feature index:value (a qid comes right after the label), got \"qid:2\"");
  EXPECT_EQ(ErrorOf(path, "1 qid:1 qid:2\n").message(),
            path + ":1: expected a feature index:value (a qid comes right after the label), got \"qid:2\"");
}

TEST(LibsvmReaderTest, IndexZeroIsAcceptedUnlessTheOptionsSayNot) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  const std::string text = "1 0:5 1:6 " + std::string(kMaxIndex) + ":7\n";
  StatusOr<Strings> records = ReadText(path, text);
  ASSERT_OK(records.status());
  EXPECT_EQ(*records, (Strings{"1 0:5 1:6 " + std::string(kMaxIndex) + ":7"}));

  LibsvmOptions one_based;
  one_based.allow_index_zero = false;
  EXPECT_EQ(ErrorOf(path, text, one_based).message(),
            path + ":1: feature \"0:5\": expected an index that is an integer from 1 to " + kMaxIndex +
                " (LibsvmOptions.allow_index_zero is false), got \"0\"");
  records = ReadText(path, "1 1:5\n", one_based);
  ASSERT_OK(records.status());
  EXPECT_EQ(*records, (Strings{"1 1:5"}));
}

TEST(LibsvmReaderTest, IndicesStrictlyIncreaseAndABadLineCanBeSkipped) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  WriteText(path, "1 3:1 3:2\n2 1:1\n1 5:1 2:1\n");
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path);
  ASSERT_OK(reader.status());
  LibsvmRecord record;
  StatusOr<bool> more = (*reader)->Next(&record);
  EXPECT_EQ(more.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(more.status().message(),
            path + ":1: feature \"3:2\": expected an index above 3 (indices increase along a line), got \"3\"");
  more = (*reader)->Next(&record);  // the reader went on past the bad line
  ASSERT_OK(more.status());
  ASSERT_TRUE(*more);
  EXPECT_EQ(Show(record), "2 1:1");
  EXPECT_EQ(record.line, 2);
  more = (*reader)->Next(&record);
  EXPECT_EQ(more.status().message(),
            path + ":3: feature \"2:1\": expected an index above 5 (indices increase along a line), got \"2\"");
  EXPECT_EQ(record.line, 3);
  EXPECT_EQ(record.offset, 16u);
  more = (*reader)->Next(&record);
  ASSERT_OK(more.status());
  EXPECT_FALSE(*more);
}

TEST(LibsvmReaderTest, EachMalformedTokenIsNamed) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  const std::string index = std::string("expected an index that is an integer from 0 to ") + kMaxIndex;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"abc 1:1", "label: expected a finite number, got \"abc\""},
      {"1:0.5 2:1", "label: expected a finite number, got \"1:0.5\""},  // no label
      {"nan 1:1", "label: expected a finite number, got \"nan\""},
      {"1e999", "label: expected a number within float range, got \"1e999\""},
      {"1 2", "expected a feature index:value, got \"2\""},
      {"1 2 :3", "expected a feature index:value, got \"2\""},
      {"1 x:1", "feature \"x:1\": " + index + ", got \"x\""},
      {"1 -1:1", "feature \"-1:1\": " + index + ", got \"-1\""},
      {"1 +1:1", "feature \"+1:1\": " + index + ", got \"+1\""},
      {"1 :1", "feature \":1\": " + index + ", got \"\""},
      {"1 1.5:1", "feature \"1.5:1\": " + index + ", got \"1.5\""},
      {"1 18446744073709551616:1",
       "feature \"18446744073709551616:1\": " + index + ", got \"18446744073709551616\""},
      {"1 2:", "feature \"2:\": expected a finite number, got \"\""},
      {"1 2: 3", "feature \"2:\": expected a finite number, got \"\""},
      {"1 2:abc", "feature \"2:abc\": expected a finite number, got \"abc\""},
      {"1 2:inf", "feature \"2:inf\": expected a finite number, got \"inf\""},
      {"1 2:1,5", "feature \"2:1,5\": expected a finite number, got \"1,5\""},
      {"1 2:1:3", "feature \"2:1:3\": expected a finite number, got \"1:3\""},
      {"1 2:1e99", "feature \"2:1e99\": expected a number within float range, got \"1e99\""},
      {"1 2:3\r4:5", "feature \"2:3\\r4:5\": expected a finite number, got \"3\\r4:5\""},  // a lone CR is no line end
  };
  for (const auto& [line, expected] : cases) {
    const Status error = ErrorOf(path, "1 1:1\n" + line + "\n3 3:3\n");
    EXPECT_EQ(error.code(), StatusCode::kInvalidArgument) << line;
    EXPECT_EQ(error.message(), path + ":2: " + expected) << line;
  }
}

TEST(LibsvmReaderTest, LimitsAndBadOptions) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  LibsvmOptions short_lines;
  short_lines.max_line_bytes = 8;
  // Eight bytes fit: neither a comment nor a line end counts.
  StatusOr<Strings> records = ReadText(path, "12 2:3.5# a comment longer than the limit\r\n", short_lines);
  ASSERT_OK(records.status());
  EXPECT_EQ(*records, (Strings{"12 2:3.5"}));
  WriteText(path, "1 2:3 4:5\n7 1:1\n");
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, short_lines);
  ASSERT_OK(reader.status());
  LibsvmRecord record;
  StatusOr<bool> more = (*reader)->Next(&record);
  EXPECT_EQ(more.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(more.status().message(), path + ":1: line longer than 8 bytes before its comment "
                                            "(LibsvmOptions.max_line_bytes): expected a shorter line");
  more = (*reader)->Next(&record);  // the long line was read to its end
  ASSERT_OK(more.status());
  ASSERT_TRUE(*more);
  EXPECT_EQ(Show(record), "7 1:1");

  LibsvmOptions few;
  few.max_features = 2;
  EXPECT_EQ(ErrorOf(path, "1 1:1 2:2\n1 1:1 2:2 3:3\n", few).message(),
            path + ":2: expected at most 2 features (LibsvmOptions.max_features), got more");

  LibsvmOptions tiny;
  tiny.buffer_bytes = 3;
  EXPECT_EQ(LibsvmReader::Open(path, tiny).status().message(),
            "LibsvmOptions.buffer_bytes: expected 4 to 1073741824, got 3");
  LibsvmOptions no_lines;
  no_lines.max_line_bytes = 0;
  EXPECT_EQ(LibsvmReader::Open(path, no_lines).status().message(),
            "LibsvmOptions.max_line_bytes: expected at least 1, got 0");

  const std::string missing = dir.File("missing.svm");
  StatusOr<std::unique_ptr<LibsvmReader>> none = LibsvmReader::Open(missing);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(none.status().message(), "libsvm file not found: " + missing);
  none = LibsvmReader::Open(dir.path());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(none.status().message(), "libsvm path is a directory: " + dir.path());
}

TEST(LibsvmReaderTest, ReadsGzipLikePlain) {
  TempDir dir;
  const std::string text = "\xEF\xBB\xBF# ranking\r\n3 qid:7 1:0.5 9:2\r\n\r\n1 qid:7 2:1 # note\n-2";
  WriteText(dir.File("a.svm"), text);
  WriteGzText(dir.File("a.svm.gz"), text);
  std::vector<Strings> records;
  std::vector<std::vector<uint64_t>> offsets(2);
  std::vector<std::vector<int64_t>> lines(2);
  for (const char* name : {"a.svm", "a.svm.gz"}) {
    StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(dir.File(name));
    ASSERT_OK(reader.status());
    StatusOr<Strings> read = ReadAll(**reader, &lines[records.size()], &offsets[records.size()]);
    ASSERT_OK(read.status());
    records.push_back(*read);
  }
  EXPECT_EQ(records[0], (Strings{"3 qid:7 1:0.5 9:2", "1 qid:7 2:1", "-2"}));
  EXPECT_EQ(lines[0], (std::vector<int64_t>{2, 4, 5}));
  EXPECT_EQ(records[1], records[0]);
  EXPECT_EQ(lines[1], lines[0]);
  EXPECT_EQ(offsets[1], offsets[0]);  // offsets count the uncompressed bytes
}

TEST(LibsvmReaderTest, ATruncatedGzipStreamIsDataLossAndSticks) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += std::to_string(i % 2) + " 1:" + std::to_string(i) + " 7:0.5\n";
  const std::string whole = dir.File("whole.svm.gz");
  WriteGzText(whole, text);
  std::ifstream in(whole, std::ios::binary);
  std::string compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir.File("cut.svm.gz");
  WriteText(cut, compressed.substr(0, compressed.size() / 2));

  LibsvmOptions options;
  options.buffer_bytes = 4096;
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(cut, options);
  ASSERT_OK(reader.status());  // the stream is read at the first Next
  const Status error = ReadAll(**reader).status();
  EXPECT_EQ(error.code(), StatusCode::kDataLoss);
  // The byte count depends on where zlib notices; the rest is fixed.
  EXPECT_THAT(error.message(), ::testing::MatchesRegex(cut + ": compressed stream is truncated after [0-9]+ bytes "
                                                             "\\(unexpected end of file\\)"));
  LibsvmRecord record;
  EXPECT_EQ((*reader)->Next(&record).status().message(), error.message());  // it stays
}

// Random bytes drawn from the characters that matter, and every prefix of a
// valid file: each line reads as a record or InvalidArgument, one line of
// text, and the reader always reaches the end.
TEST(LibsvmReaderTest, RandomAndTruncatedInputFailCleanly) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  std::mt19937 random(15);
  const std::string alphabet = "10:q. -e#\n\r\t";
  std::vector<std::string> inputs;
  for (int i = 0; i < 500; ++i) {
    std::string text(random() % 40, ' ');
    for (char& c : text) c = alphabet[random() % alphabet.size()];
    inputs.push_back(text);
  }
  const std::string valid = "\xEF\xBB\xBF" "1 qid:2 3:4.5 6:-7e-1 # c\r\n\n-1 0:1\n";
  for (size_t size = 0; size <= valid.size(); ++size) inputs.push_back(valid.substr(0, size));
  for (const std::string& text : inputs) {
    WriteText(path, text);
    StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path);
    ASSERT_OK(reader.status());
    LibsvmRecord record;
    int64_t calls = 0;
    while (true) {
      const StatusOr<bool> more = (*reader)->Next(&record);
      ASSERT_LE(++calls, static_cast<int64_t>(text.size()) + 1) << "no end reached";
      if (more.ok() && !*more) break;
      if (more.ok()) continue;
      EXPECT_EQ(more.status().code(), StatusCode::kInvalidArgument) << more.status().ToString();
      EXPECT_EQ(more.status().message().find('\n'), std::string::npos) << more.status().message();
    }
  }
}

// Line i of the generated file: a label, a qid on every third line, and up to
// 11 features with exactly representable values.
LibsvmRecord GeneratedRecord(int64_t i) {
  LibsvmRecord record;
  record.label = static_cast<float>(i % 7 - 3);
  if (i % 3 == 0) record.qid = static_cast<uint64_t>(i / 3);
  uint64_t index = static_cast<uint64_t>(i % 5);
  for (int64_t j = 0; j <= i % 11; ++j) {
    record.features.push_back({index, static_cast<float>((i + j) % 1000) * 0.25f - 50});
    index += static_cast<uint64_t>(1 + (i * 31 + j) % 1000);
  }
  return record;
}

TEST(LibsvmReaderTest, ReadsAHundredThousandLinesThroughASmallBuffer) {
  TempDir dir;
  const std::string path = dir.File("big.svm");
  constexpr int64_t kLines = 100000;
  {
    std::ofstream out(path, std::ios::binary);
    for (int64_t i = 0; i < kLines; ++i) out << Show(GeneratedRecord(i)) << (i % 2 == 0 ? "\n" : "\r\n");
  }
  LibsvmOptions options;
  options.buffer_bytes = 4096;
  options.max_line_bytes = 192;  // a line that grew past this would fail
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, options);
  ASSERT_OK(reader.status());
  LibsvmRecord record;
  int64_t count = 0;
  while (true) {
    StatusOr<bool> more = (*reader)->Next(&record);
    ASSERT_OK(more.status());
    if (!*more) break;
    const LibsvmRecord expected = GeneratedRecord(count);
    ASSERT_EQ(record.label, expected.label) << count;
    ASSERT_EQ(record.qid, expected.qid) << count;
    ASSERT_EQ(record.features, expected.features) << count;
    ASSERT_EQ(record.line, count + 1);
    ++count;
  }
  EXPECT_EQ(count, kLines);
  EXPECT_LE(record.features.capacity(), size_t{16});  // one line's worth, reused
}

TEST(LibsvmReaderTest, StartsAtTheFirstLineAtOrAfterAByteOffset) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  WriteText(path, "1 1:1\n# c\n\n22 2:2\r\n333 qid:3 3:3\n4");
  StatusOr<std::unique_ptr<LibsvmReader>> whole = LibsvmReader::Open(path);
  ASSERT_OK(whole.status());
  std::vector<uint64_t> offsets;
  StatusOr<Strings> all = ReadAll(**whole, nullptr, &offsets);
  ASSERT_OK(all.status());
  ASSERT_EQ(offsets, (std::vector<uint64_t>{0, 11, 19, 33}));

  const uint64_t file_size = std::filesystem::file_size(path);
  for (uint64_t start = 0; start <= file_size + 1; ++start) {
    LibsvmOptions options;
    options.start_offset = start;
    StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, options);
    ASSERT_OK(reader.status());
    std::vector<int64_t> lines;
    std::vector<uint64_t> got;
    StatusOr<Strings> records = ReadAll(**reader, &lines, &got);
    ASSERT_OK(records.status());
    size_t first = 0;  // the first record starting at or after `start`
    while (first < offsets.size() && offsets[first] < start) ++first;
    EXPECT_EQ(got, std::vector<uint64_t>(offsets.begin() + first, offsets.end())) << start;
    EXPECT_EQ(*records, Strings(all->begin() + first, all->end())) << start;
    if (!lines.empty()) {
      EXPECT_EQ(lines[0], start == 0 ? 1 : 0) << start;  // unknown after a jump
    }
  }

  LibsvmOptions options;
  options.start_offset = 3;
  WriteText(path, "1 1:1\n2 x\n");
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, options);
  ASSERT_OK(reader.status());
  EXPECT_EQ(ReadAll(**reader).status().message(), path + ": record at byte 6: expected a feature index:value, got \"x\"");

  const std::string gz = dir.File("a.svm.gz");
  WriteGzText(gz, "1 1:1\n");
  EXPECT_EQ(LibsvmReader::Open(gz, options).status().message(),
            gz + ": a start offset needs a plain file, and this one is gzip'd");
}

TEST(LibsvmReaderTest, IndexLibsvmFileSplitsAFileIntoShards) {
  TempDir dir;
  const std::string path = dir.File("a.svm");
  std::string text = "# 1000 records, with blank and comment lines between\n";
  for (int64_t i = 0; i < 1000; ++i) {
    text += Show(GeneratedRecord(i)) + "\n";
    if (i % 7 == 0) text += "\n# comment\n";
  }
  WriteText(path, text);
  StatusOr<LibsvmFileIndex> index = IndexLibsvmFile(path, 64);
  ASSERT_OK(index.status());
  EXPECT_EQ(index->records, 1000);
  ASSERT_EQ(index->offsets.size(), size_t{16});  // records 0, 64, ..., 960

  // Shard i starts at offsets[i] and holds the next 64 records.
  Strings shards;
  for (size_t shard = 0; shard < index->offsets.size(); ++shard) {
    LibsvmOptions options;
    options.start_offset = index->offsets[shard];
    StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, options);
    ASSERT_OK(reader.status());
    LibsvmRecord record;
    for (int64_t i = 0; i < 64; ++i) {
      StatusOr<bool> more = (*reader)->Next(&record);
      ASSERT_OK(more.status());
      if (!*more) break;
      shards.push_back(Show(record));
    }
  }
  ASSERT_EQ(shards.size(), size_t{1000});
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(shards[i], Show(GeneratedRecord(i))) << i;

  const std::string gz = dir.File("a.svm.gz");
  WriteGzText(gz, text);
  StatusOr<LibsvmFileIndex> gz_index = IndexLibsvmFile(gz, 64);
  ASSERT_OK(gz_index.status());
  EXPECT_EQ(gz_index->records, 1000);
  EXPECT_EQ(gz_index->offsets, index->offsets);  // in the uncompressed stream

  StatusOr<LibsvmFileIndex> one = IndexLibsvmFile(path, 1);
  ASSERT_OK(one.status());
  EXPECT_EQ(one->offsets.size(), size_t{1000});
  EXPECT_EQ(IndexLibsvmFile(path, 0).status().message(), "IndexLibsvmFile: expected every >= 1, got 0");
  WriteText(path, "1 1:1\n1 1:x\n");
  EXPECT_EQ(IndexLibsvmFile(path, 1).status().message(),
            path + ":2: feature \"1:x\": expected a finite number, got \"x\"");
}

// Fashion-MNIST written as LIBSVM's own mnist.scale is (1-based pixel
// indices, pixel/255 as svm-scale prints it with "%g", zeros left out),
// gzip'd, reads back the IDX files' labels and pixels.
TEST(LibsvmReaderTest, FashionMnistInLibsvmScaleLayoutRoundTrip) {
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  const std::string images = base + "train-images-idx3-ubyte.gz", labels = base + "train-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images) || !std::filesystem::exists(labels)) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  StatusOr<ImageDataset> data = LoadImageDataset(images, labels, /*max_examples=*/500);
  ASSERT_OK(data.status());
  ASSERT_EQ(data->count, 500);
  const int64_t pixels = data->example_size();
  ASSERT_EQ(pixels, 784);

  TempDir dir;
  const std::string path = dir.File("fashion-mnist.scale.gz");
  std::string text;
  int64_t nonzero = 0;
  for (int64_t i = 0; i < data->count; ++i) {
    text += std::to_string(data->labels[i]);
    for (int64_t p = 0; p < pixels; ++p) {
      const uint8_t pixel = data->pixels[i * pixels + p];
      if (pixel == 0) continue;
      char feature[64];
      std::snprintf(feature, sizeof(feature), " %lld:%g", static_cast<long long>(p + 1), pixel / 255.0);
      text += feature;
      ++nonzero;
    }
    text += " \n";  // svm-scale leaves a space before the newline
  }
  WriteGzText(path, text);

  LibsvmOptions options;
  options.allow_index_zero = false;  // libsvm's own files are 1-based
  StatusOr<std::unique_ptr<LibsvmReader>> reader = LibsvmReader::Open(path, options);
  ASSERT_OK(reader.status());
  LibsvmRecord record;
  int64_t features = 0;
  for (int64_t i = 0; i < data->count; ++i) {
    StatusOr<bool> more = (*reader)->Next(&record);
    ASSERT_OK(more.status());
    ASSERT_TRUE(*more) << i;
    ASSERT_EQ(record.label, data->labels[i]) << i;
    std::vector<float> dense(pixels, 0.0f);
    for (const LibsvmFeature& feature : record.features) {
      ASSERT_GE(feature.index, 1u);
      ASSERT_LE(feature.index, static_cast<uint64_t>(pixels));
      dense[feature.index - 1] = feature.value;
    }
    features += static_cast<int64_t>(record.features.size());
    for (int64_t p = 0; p < pixels; ++p) {
      ASSERT_NEAR(dense[p], data->pixels[i * pixels + p] / 255.0f, 1e-6) << i << " " << p;
    }
  }
  EXPECT_EQ(features, nonzero);
  StatusOr<bool> more = (*reader)->Next(&record);
  ASSERT_OK(more.status());
  EXPECT_FALSE(*more);
}

}  // namespace
}  // namespace tessera
