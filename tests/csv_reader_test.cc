#include "core/csv_reader.h"

#include <unistd.h>
#include <zlib.h>

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

using Rows = std::vector<std::vector<std::string>>;

using TempDir = ScopedTestDir;

// Every record after the header, or the first error.
StatusOr<Rows> ReadAll(CsvReader& reader, std::vector<int64_t>* lines = nullptr,
                       std::vector<uint64_t>* offsets = nullptr) {
  Rows rows;
  CsvRecord record;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader.Next(&record));
    if (!more) return rows;
    rows.emplace_back(record.fields.begin(), record.fields.end());
    if (lines != nullptr) lines->push_back(record.line);
    if (offsets != nullptr) offsets->push_back(record.offset);
  }
}

// Writes `text` and reads it whole: the header's columns first, then the records.
StatusOr<Rows> ReadText(const std::string& path, const std::string& text, const CsvOptions& options = {}) {
  WriteText(path, text);
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, CsvReader::Open(path, options));
  ASSIGN_OR_RETURN(Rows rows, ReadAll(*reader));
  rows.insert(rows.begin(), reader->Columns());
  return rows;
}

// The first error reading `text` (OK when there is none).
Status ErrorOf(const std::string& path, const std::string& text, const CsvOptions& options = {}) {
  return ReadText(path, text, options).status();
}

TEST(CsvReaderTest, ReadsHeaderRecordsLinesAndOffsets) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "a,b,c\n1,2,3\n4,5,6\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->Columns(), (std::vector<std::string>{"a", "b", "c"}));
  std::vector<int64_t> lines;
  std::vector<uint64_t> offsets;
  StatusOr<Rows> rows = ReadAll(**reader, &lines, &offsets);
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"1", "2", "3"}, {"4", "5", "6"}}));
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(offsets, (std::vector<uint64_t>{6, 12}));
  CsvRecord record;
  StatusOr<bool> more = (*reader)->Next(&record);  // the end stays the end
  ASSERT_OK(more.status());
  EXPECT_FALSE(*more);
}

TEST(CsvReaderTest, ColumnIndexNamesAMissingColumnAndTheFile) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "label,pixel1,pixel2\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  StatusOr<int> index = (*reader)->ColumnIndex("pixel2");
  ASSERT_OK(index.status());
  EXPECT_EQ(*index, 2);
  index = (*reader)->ColumnIndex("pixel3");
  EXPECT_EQ(index.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(index.status().message(), path + ": no column named \"pixel3\" in the header (3 columns)");
}

TEST(CsvReaderTest, QuotedFieldsHoldDelimitersQuotesAndNewlines) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "name,text\n\"x,y\",\"say \"\"hi\"\"\"\n\"multi\nline\",plain\nlast,\"\"\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  std::vector<int64_t> lines;
  StatusOr<Rows> rows = ReadAll(**reader, &lines);
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"x,y", "say \"hi\""}, {"multi\nline", "plain"}, {"last", ""}}));
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3, 5}));  // a record's line is the one it starts on
}

TEST(CsvReaderTest, CrlfLineEndsAndAMissingFinalNewline) {
  TempDir dir;
  StatusOr<Rows> rows = ReadText(dir.File("a.csv"), "a,b\r\n1,\"2\"\r\n3,4");
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"a", "b"}, {"1", "2"}, {"3", "4"}}));
  rows = ReadText(dir.File("b.csv"), "a,b\n\"x\r\ny\",\"z\"");  // CRLF inside quotes is data
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"a", "b"}, {"x\r\ny", "z"}}));
}

TEST(CsvReaderTest, EmptyFieldsAndEmptyLines) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "a,b,c\n\n,,\n\r\n1,,3\n\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  std::vector<int64_t> lines;
  StatusOr<Rows> rows = ReadAll(**reader, &lines);
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"", "", ""}, {"1", "", "3"}}));
  EXPECT_EQ(lines, (std::vector<int64_t>{3, 5}));
}

TEST(CsvReaderTest, SkipsAByteOrderMark) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "\xEF\xBB\xBFid,v\n1,2\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->Columns(), (std::vector<std::string>{"id", "v"}));
  std::vector<uint64_t> offsets;
  StatusOr<Rows> rows = ReadAll(**reader, nullptr, &offsets);
  ASSERT_OK(rows.status());
  EXPECT_EQ(offsets, (std::vector<uint64_t>{8}));  // offsets count the mark's 3 bytes
}

TEST(CsvReaderTest, ReadsTsv) {
  TempDir dir;
  CsvOptions options;
  options.delimiter = '\t';
  StatusOr<Rows> rows = ReadText(dir.File("a.tsv"), "a\tb\n\"x\ty\"\t2,3\n", options);
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"a", "b"}, {"x\ty", "2,3"}}));
  const std::string path = dir.File("b.tsv");
  EXPECT_EQ(ErrorOf(path, "a\tb\n\"x\"y\t2\n", options).message(),
            path + ":2:4: expected a tab or a line end after a closing quote, found 'y'");
}

TEST(CsvReaderTest, AWrongFieldCountNamesLineAndCountsAndCanBeSkipped) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "a,b,c\n1,2\n4,5,6\n7,8,9,10\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  CsvRecord record;
  StatusOr<bool> more = (*reader)->Next(&record);
  EXPECT_EQ(more.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(more.status().message(), path + ":2: 2 fields, expected 3 (the header's)");
  more = (*reader)->Next(&record);
  ASSERT_OK(more.status());
  EXPECT_EQ(std::vector<std::string>(record.fields.begin(), record.fields.end()),
            (std::vector<std::string>{"4", "5", "6"}));
  more = (*reader)->Next(&record);
  EXPECT_EQ(more.status().message(), path + ":4: 4 fields, expected 3 (the header's)");
}

TEST(CsvReaderTest, QuoteErrorsNameLineAndColumnAndStick) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  EXPECT_EQ(ErrorOf(path, "a,b\n1,\"open\n2,3\n").message(),
            path + ":2:3: unterminated quoted field: expected a closing quote, found the end of the file");
  EXPECT_EQ(ErrorOf(path, "a,b\n1,ab\"c\n").message(),
            path + ":2:5: quote inside an unquoted field: expected the whole field in quotes, "
                   "with each quote inside it doubled");
  EXPECT_EQ(ErrorOf(path, "a,b\n\"x\"y,2\n").message(),
            path + ":2:4: expected ',' or a line end after a closing quote, found 'y'");
  EXPECT_EQ(ErrorOf(path, "a,b\n1,\"x\"\r2\n").message(),
            path + ":2:6: expected ',' or a line end after a closing quote, found a carriage return");
  const Status error = ErrorOf(path, "\"a\nb\n");
  EXPECT_EQ(error.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error.message(),
            path + ":1:1: unterminated quoted field: expected a closing quote, found the end of the file");

  WriteText(path, "a,b\n1,2\"\n3,4\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  CsvRecord record;
  const Status first = (*reader)->Next(&record).status();
  EXPECT_EQ(first.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*reader)->Next(&record).status().message(), first.message());  // no guessing where to go on
}

// CsvOptions.column_names: a file without a header; quoting off: a quote
// is a plain byte.
TEST(CsvReaderTest, ReadsAFileWithoutAHeaderOrQuoting) {
  TempDir dir;
  const std::string path = dir.File("a.tsv");
  CsvOptions options;
  options.delimiter = '\t';
  options.column_names = {"x", "y"};
  options.quoting = false;
  WriteText(path, "1\t\"a\n2\tb\"c\"\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path, options);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->Columns(), (std::vector<std::string>{"x", "y"}));
  std::vector<int64_t> lines;
  StatusOr<Rows> rows = ReadAll(**reader, &lines);
  ASSERT_OK(rows.status());
  EXPECT_EQ(*rows, (Rows{{"1", "\"a"}, {"2", "b\"c\""}}));
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 2}));

  WriteText(path, "1\t2\t3\n");
  reader = CsvReader::Open(path, options);
  ASSERT_OK(reader.status());
  CsvRecord record;
  EXPECT_EQ((*reader)->Next(&record).status().message(), path + ":1: 3 fields, expected 2 (one per column)");

  options.column_names = {"x", "y", "x"};
  EXPECT_EQ(CsvReader::Open(path, options).status().message(),
            "CsvOptions.column_names: columns 1 and 3 are both named \"x\"");
}

TEST(CsvReaderTest, RefusesBadFilesHeadersAndOptions) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  Status error = ErrorOf(path, "");
  EXPECT_EQ(error.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error.message(), path + ": empty file: expected a header row naming the columns");
  EXPECT_EQ(ErrorOf(path, "\n\r\n").message(), path + ": empty file: expected a header row naming the columns");
  EXPECT_EQ(ErrorOf(path, "x,y,x\n").message(), path + ":1: columns 1 and 3 are both named \"x\"");
  EXPECT_EQ(ErrorOf(path, "\"x\ny\",\"x\ny\"\n").message(), path + ":1: columns 1 and 2 are both named \"x\\ny\"");

  CsvOptions small;
  small.max_record_bytes = 8;
  for (const std::string record : {"123456789", "\"12345678", ",,,,,,,,,,,,"}) {
    EXPECT_EQ(ErrorOf(path, "a\n" + record + "\n", small).message(),
              path + ":2: record longer than 8 bytes (CsvOptions.max_record_bytes): expected a shorter record, "
                     "or a missing closing quote");
  }

  // Plain runs are read in bulk, across buffer refills: the limit falls on
  // the same byte as when they were read one at a time.
  small.buffer_bytes = 4;
  EXPECT_OK(ErrorOf(path, "a\n12345678\n", small));
  EXPECT_EQ(ErrorOf(path, "a\n123456789\n", small).message(),
            path + ":2: record longer than 8 bytes (CsvOptions.max_record_bytes): expected a shorter record, "
                   "or a missing closing quote");
  EXPECT_OK(ErrorOf(path, "a,b\n1234,567\n", small));
  EXPECT_EQ(ErrorOf(path, "a,b\n1234,5678\n", small).code(), StatusCode::kInvalidArgument);

  const std::string missing = dir.File("missing.csv");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(missing);
  EXPECT_EQ(reader.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reader.status().message(), "CSV file not found: " + missing);

  CsvOptions quote;
  quote.delimiter = '"';
  EXPECT_EQ(CsvReader::Open(path, quote).status().message(),
            "CsvOptions.delimiter: expected a character other than a quote or a line end, got '\"'");
  CsvOptions tiny;
  tiny.buffer_bytes = 3;
  EXPECT_EQ(CsvReader::Open(path, tiny).status().message(), "CsvOptions.buffer_bytes: expected 4 to 1073741824, got 3");
}

TEST(CsvReaderTest, ReadsGzipLikePlain) {
  TempDir dir;
  const std::string text = "\xEF\xBB\xBFk,v\r\n1,\"a\nb\"\r\n2,\n";
  WriteText(dir.File("a.csv"), text);
  WriteGzText(dir.File("a.csv.gz"), text);
  std::vector<Rows> rows;
  std::vector<std::vector<uint64_t>> offsets(2);
  for (const char* name : {"a.csv", "a.csv.gz"}) {
    StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(dir.File(name));
    ASSERT_OK(reader.status());
    StatusOr<Rows> read = ReadAll(**reader, nullptr, &offsets[rows.size()]);
    ASSERT_OK(read.status());
    rows.push_back(*read);
  }
  EXPECT_EQ(rows[0], (Rows{{"1", "a\nb"}, {"2", ""}}));
  EXPECT_EQ(rows[1], rows[0]);
  EXPECT_EQ(offsets[1], offsets[0]);  // offsets count the uncompressed bytes
}

TEST(CsvReaderTest, ATruncatedGzipStreamIsDataLoss) {
  TempDir dir;
  std::string text = "i,square\n";
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + "," + std::to_string(i * i) + "\n";
  const std::string whole = dir.File("whole.csv.gz");
  WriteGzText(whole, text);
  std::ifstream in(whole, std::ios::binary);
  std::string compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir.File("cut.csv.gz");
  WriteText(cut, compressed.substr(0, compressed.size() / 2));

  CsvOptions options;
  options.buffer_bytes = 4096;
  // zlib inflates ahead into its own buffer, so the header may fail already.
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(cut, options);
  const Status error = reader.ok() ? ReadAll(**reader).status() : reader.status();
  EXPECT_EQ(error.code(), StatusCode::kDataLoss);
  // The byte count depends on where zlib notices; the rest is fixed.
  EXPECT_THAT(error.message(), ::testing::MatchesRegex(cut + ": compressed stream is truncated after [0-9]+ bytes "
                                                             "\\(unexpected end of file\\)"));
}

// Random bytes drawn from the characters that matter, and every prefix of a
// valid file: each read ends in records, the end, or InvalidArgument.
TEST(CsvReaderTest, RandomAndTruncatedInputFailCleanly) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  std::mt19937 random(15);
  const std::string alphabet = "a1,\"\n\r\t";
  std::vector<std::string> inputs;
  for (int i = 0; i < 300; ++i) {
    std::string text(random() % 40, ' ');
    for (char& c : text) c = alphabet[random() % alphabet.size()];
    inputs.push_back(text);
  }
  const std::string valid = "a,b\r\n\"x,\"\"y\"\"\n\",2\n3,\n";
  for (size_t size = 0; size <= valid.size(); ++size) inputs.push_back(valid.substr(0, size));
  for (const std::string& text : inputs) {
    const Status status = ErrorOf(path, text);
    EXPECT_TRUE(status.ok() || status.code() == StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
  }
}

TEST(CsvReaderTest, ParseFloatFieldIsStrict) {
  const std::vector<std::pair<std::string, float>> good = {
      {"1.5", 1.5f}, {"-2", -2.0f}, {"+3", 3.0f}, {"1e3", 1000.0f}, {"0", 0.0f}, {".25", 0.25f}};
  for (const auto& [field, expected] : good) {
    StatusOr<std::optional<float>> value = ParseFloatField(field);
    ASSERT_OK(value.status());
    ASSERT_TRUE(value->has_value()) << field;
    EXPECT_EQ(**value, expected) << field;
  }
  StatusOr<std::optional<float>> empty = ParseFloatField("");
  ASSERT_OK(empty.status());
  EXPECT_FALSE(empty->has_value());

  for (const std::string field : {"abc", "1.5x", " 1", "1 ", "nan", "inf", "-inf", "+-1", "+", "-", "0x10", "1,5"}) {
    const Status error = ParseFloatField(field).status();
    EXPECT_EQ(error.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(error.message(), "expected a finite number, got \"" + field + "\"");
  }
  EXPECT_EQ(ParseFloatField("1e999").status().message(), "expected a number within float range, got \"1e999\"");
}

TEST(CsvReaderTest, ParseFloatNamesFileLineAndColumn) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "label,pixel1\n3,\n4,x\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  CsvRecord record;
  ASSERT_OK((*reader)->Next(&record).status());
  StatusOr<std::optional<float>> value = (*reader)->ParseFloat(record, 1);
  ASSERT_OK(value.status());
  EXPECT_FALSE(value->has_value());
  ASSERT_OK((*reader)->Next(&record).status());
  EXPECT_EQ((*reader)->ParseFloat(record, 1).status().message(),
            path + ":3: column \"pixel1\": expected a finite number, got \"x\"");
}

TEST(CsvReaderTest, ReadsAHundredThousandRowsThroughASmallBuffer) {
  TempDir dir;
  const std::string path = dir.File("big.csv");
  {
    std::ofstream out(path, std::ios::binary);
    out << "i,triple,text\n";
    for (int i = 0; i < 100000; ++i) out << i << ',' << 3 * i << ",\"q," << i << "\"\n";
  }
  CsvOptions options;
  options.buffer_bytes = 4096;
  options.max_record_bytes = 64;  // a record that grew past this would fail
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path, options);
  ASSERT_OK(reader.status());
  CsvRecord record;
  int64_t count = 0;
  while (true) {
    StatusOr<bool> more = (*reader)->Next(&record);
    ASSERT_OK(more.status());
    if (!*more) break;
    ASSERT_EQ(record.fields[0], std::to_string(count));
    ASSERT_EQ(record.fields[1], std::to_string(3 * count));
    ASSERT_EQ(record.fields[2], "q," + std::to_string(count));
    ASSERT_EQ(record.line, count + 2);
    ++count;
  }
  EXPECT_EQ(count, 100000);
  EXPECT_LE(record.text.capacity(), size_t{1024});  // one record's worth, reused
}

TEST(CsvReaderTest, StartsAtTheFirstRecordAtOrAfterAByteOffset) {
  TempDir dir;
  const std::string path = dir.File("a.csv");
  WriteText(path, "a,b\n1,\"x,y\"\n22,2\n\n333,3\n");
  StatusOr<std::unique_ptr<CsvReader>> whole = CsvReader::Open(path);
  ASSERT_OK(whole.status());
  std::vector<uint64_t> offsets;
  StatusOr<Rows> all = ReadAll(**whole, nullptr, &offsets);
  ASSERT_OK(all.status());
  ASSERT_EQ(offsets, (std::vector<uint64_t>{4, 12, 18}));

  const uint64_t file_size = std::filesystem::file_size(path);
  for (uint64_t start = 0; start <= file_size + 1; ++start) {
    CsvOptions options;
    options.start_offset = start;
    StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path, options);
    ASSERT_OK(reader.status());
    EXPECT_EQ((*reader)->Columns(), (std::vector<std::string>{"a", "b"}));
    std::vector<int64_t> lines;
    std::vector<uint64_t> got;
    StatusOr<Rows> rows = ReadAll(**reader, &lines, &got);
    ASSERT_OK(rows.status());
    size_t first = 0;  // the first record starting at or after `start`
    while (first < offsets.size() && offsets[first] < start) ++first;
    EXPECT_EQ(got, std::vector<uint64_t>(offsets.begin() + first, offsets.end())) << start;
    EXPECT_EQ(*rows, Rows(all->begin() + first, all->end())) << start;
    if (start > 4 && !lines.empty()) {
      EXPECT_EQ(lines[0], 0);  // unknown after a jump
    }
  }

  CsvOptions options;
  options.start_offset = 5;
  WriteText(path, "a,b\n1,2\n3\n");
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path, options);
  ASSERT_OK(reader.status());
  EXPECT_EQ(ReadAll(**reader).status().message(), path + ": record at byte 8: 1 fields, expected 2 (the header's)");

  const std::string gz = dir.File("a.csv.gz");
  WriteGzText(gz, "a,b\n1,2\n");
  EXPECT_EQ(CsvReader::Open(gz, options).status().message(),
            gz + ": a start offset needs a plain file, and this one is gzip'd");
}

// Fashion-MNIST in Kaggle's CSV layout (label,pixel1,...,pixel784) reads back
// the same labels and pixels as the IDX files.
TEST(CsvReaderTest, FashionMnistKaggleLayoutRoundTrip) {
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  const std::string images = base + "train-images-idx3-ubyte.gz", labels = base + "train-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images) || !std::filesystem::exists(labels)) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  StatusOr<ImageDataset> data = LoadImageDataset(images, labels, /*max_examples=*/200);
  ASSERT_OK(data.status());
  ASSERT_EQ(data->count, 200);
  const int64_t pixels = data->example_size();
  ASSERT_EQ(pixels, 784);

  TempDir dir;
  const std::string path = dir.File("fashion-mnist_train.csv.gz");
  std::string text = "label";
  for (int64_t p = 1; p <= pixels; ++p) text += ",pixel" + std::to_string(p);  // header
  text += "\n";
  for (int64_t i = 0; i < data->count; ++i) {
    text += std::to_string(data->labels[i]);
    for (int64_t p = 0; p < pixels; ++p) {
      text += ',';
      text += std::to_string(data->pixels[i * pixels + p]);
    }
    text += "\n";
  }
  WriteGzText(path, text);

  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  ASSERT_OK(reader.status());
  ASSERT_EQ((*reader)->Columns().size(), size_t{785});
  StatusOr<int> label_column = (*reader)->ColumnIndex("label");
  StatusOr<int> first_pixel = (*reader)->ColumnIndex("pixel1");
  ASSERT_OK(label_column.status());
  ASSERT_OK(first_pixel.status());
  CsvRecord record;
  for (int64_t i = 0; i < data->count; ++i) {
    StatusOr<bool> more = (*reader)->Next(&record);
    ASSERT_OK(more.status());
    ASSERT_TRUE(*more) << i;
    StatusOr<std::optional<float>> label = (*reader)->ParseFloat(record, *label_column);
    ASSERT_OK(label.status());
    ASSERT_EQ(label->value(), data->labels[i]) << i;
    for (int64_t p = 0; p < pixels; ++p) {
      StatusOr<std::optional<float>> pixel = (*reader)->ParseFloat(record, *first_pixel + static_cast<int>(p));
      ASSERT_OK(pixel.status());
      ASSERT_EQ(pixel->value(), data->pixels[i * pixels + p]) << i << " " << p;
    }
  }
  StatusOr<bool> more = (*reader)->Next(&record);
  ASSERT_OK(more.status());
  EXPECT_FALSE(*more);
}

}  // namespace
}  // namespace tessera
