#include "core/csv_reader.h"

#include <charconv>
#include <cmath>
#include <map>

#include "core/byte_source.h"

namespace tessera {
namespace {

constexpr int kEnd = ByteSource::kEnd;

}  // namespace

StatusOr<std::unique_ptr<CsvReader>> CsvReader::Open(const std::string& path, const CsvOptions& options) {
  const char delimiter = options.delimiter;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
    return InvalidArgumentError("CsvOptions.delimiter: expected a character other than a quote or a line end, got " +
                                DescribeByte(static_cast<unsigned char>(delimiter)));
  }
  if (options.buffer_bytes < 4 || options.buffer_bytes > ByteSource::kMaxBufferBytes) {
    return InvalidArgumentError("CsvOptions.buffer_bytes: expected 4 to " + std::to_string(ByteSource::kMaxBufferBytes) +
                                ", got " + std::to_string(options.buffer_bytes));
  }
  if (options.max_record_bytes < 1) return InvalidArgumentError("CsvOptions.max_record_bytes: expected at least 1, got 0");

  auto source = std::make_unique<ByteSource>();
  RETURN_IF_ERROR(source->Open(path, options.buffer_bytes, "CSV"));
  if (options.start_offset > 0 && source->compressed()) {
    return InvalidArgumentError(path + ": a start offset needs a plain file, and this one is gzip'd");
  }
  std::unique_ptr<CsvReader> reader(new CsvReader(path, options, std::move(source)));
  RETURN_IF_ERROR(reader->ReadHeader());
  RETURN_IF_ERROR(reader->SkipToStartOffset());
  return reader;
}

CsvReader::CsvReader(std::string path, const CsvOptions& options, std::unique_ptr<ByteSource> source)
    : path_(std::move(path)), options_(options), source_(std::move(source)) {}

CsvReader::~CsvReader() = default;

bool CsvReader::compressed() const { return source_->compressed(); }

Status CsvReader::ReadHeader() {
  source_->SkipByteOrderMark();
  if (!options_.column_names.empty()) return TakeColumnNames();
  CsvRecord header;
  ASSIGN_OR_RETURN(const bool found, ReadRecord(&header));
  if (!found) return InvalidArgumentError(path_ + ": empty file: expected a header row naming the columns");
  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < header.fields.size(); ++i) {
    const auto [it, added] = seen.emplace(header.fields[i], i);
    if (!added) {
      return InvalidArgumentError(Where(header.line) + ": columns " + std::to_string(it->second + 1) + " and " +
                                  std::to_string(i + 1) + " are both named " + QuoteForMessage(header.fields[i]));
    }
  }
  columns_.assign(header.fields.begin(), header.fields.end());
  return OkStatus();
}

Status CsvReader::TakeColumnNames() {
  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < options_.column_names.size(); ++i) {
    const auto [it, added] = seen.emplace(options_.column_names[i], i);
    if (!added) {
      return InvalidArgumentError("CsvOptions.column_names: columns " + std::to_string(it->second + 1) + " and " +
                                  std::to_string(i + 1) + " are both named " +
                                  QuoteForMessage(options_.column_names[i]));
    }
  }
  columns_ = options_.column_names;
  return OkStatus();
}

Status CsvReader::SkipToStartOffset() {
  if (options_.start_offset <= source_->offset()) return OkStatus();
  // A record starts at the start of a line: no quoted field holds a newline.
  lines_known_ = false;
  return source_->SeekToLineAtOrAfter(options_.start_offset);
}

StatusOr<int> CsvReader::ColumnIndex(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i] == name) return static_cast<int>(i);
  }
  return NotFoundError(path_ + ": no column named " + QuoteForMessage(name) + " in the header (" +
                       std::to_string(columns_.size()) + " columns)");
}

StatusOr<bool> CsvReader::Next(CsvRecord* record) {
  if (!sticky_error_.ok()) return sticky_error_;
  StatusOr<bool> found = ReadRecord(record);
  if (!found.ok()) {
    sticky_error_ = found.status();
    return sticky_error_;
  }
  if (*found && record->fields.size() != columns_.size()) {
    return InvalidArgumentError(Where(record->line) + ": " + std::to_string(record->fields.size()) +
                                " fields, expected " + std::to_string(columns_.size()) +
                                (options_.column_names.empty() ? " (the header's)" : " (one per column)"));
  }
  return found;
}

StatusOr<bool> CsvReader::ReadRecord(CsvRecord* record) {
  record->text.clear();
  record->fields.clear();
  field_ends_.clear();

  int byte = kEnd;
  while (true) {  // empty lines are skipped
    record->offset = record_offset_ = source_->offset();
    record->line = lines_known_ ? source_->line() : 0;
    byte = source_->Get();
    if (byte == '\r' && source_->Peek() == '\n') byte = source_->Get();
    if (byte != '\n') break;
  }
  if (byte == kEnd) {
    RETURN_IF_ERROR(source_->status());
    return false;
  }

  bool end_of_record = false;
  while (!end_of_record) {
    if (byte == '"' && options_.quoting) {
      ASSIGN_OR_RETURN(end_of_record, ReadQuotedField(record));
    } else {
      ASSIGN_OR_RETURN(end_of_record, ReadUnquotedField(byte, record));
    }
    field_ends_.push_back(record->text.size());
    if (!end_of_record) {
      RETURN_IF_ERROR(CheckRecordSize(*record));  // a line of commas is all fields, no text
      byte = source_->Get();
    }
  }
  // A record cut short by a read error is the error, not a record.
  RETURN_IF_ERROR(source_->status());

  // Views are made last: `text` may move while it grows.
  size_t begin = 0;
  for (size_t end : field_ends_) {
    record->fields.emplace_back(record->text.data() + begin, end - begin);
    begin = end;
  }
  return true;
}

// Reads the rest of a field whose first byte is `first` (not a quote).
// Returns true when it ended the record, false when a delimiter followed.
StatusOr<bool> CsvReader::ReadUnquotedField(int first, CsvRecord* record) {
  for (int byte = first;; byte = source_->Get()) {
    if (byte == options_.delimiter) return false;
    if (byte == '\n' || byte == kEnd) return true;
    if (byte == '\r' && source_->Peek() == '\n') {
      source_->Get();
      return true;
    }
    if (byte == '"' && options_.quoting) {
      return InvalidArgumentError(Where(source_->line(), source_->column()) +
                                  ": quote inside an unquoted field: expected the whole field in quotes, "
                                  "with each quote inside it doubled");
    }
    RETURN_IF_ERROR(Append(static_cast<char>(byte), record));
    // The plain bytes after it in bulk, as many as the record may still
    // hold: Append's check then fails on the next one, as byte by byte.
    const size_t used = record->text.size() + field_ends_.size();
    const size_t room = used < options_.max_record_bytes ? options_.max_record_bytes - used : 0;
    source_->AppendPlainRun(options_.delimiter, room, &record->text);
  }
}

// Reads a quoted field after its opening quote. Returns true when it ended
// the record, false when a delimiter followed.
StatusOr<bool> CsvReader::ReadQuotedField(CsvRecord* record) {
  const int64_t open_line = source_->line();
  const int64_t open_column = source_->column();
  while (true) {
    const int byte = source_->Get();
    if (byte == kEnd) {
      RETURN_IF_ERROR(source_->status());
      return InvalidArgumentError(Where(open_line, open_column) +
                                  ": unterminated quoted field: expected a closing quote, found the end of the file");
    }
    if (byte != '"') {
      RETURN_IF_ERROR(Append(static_cast<char>(byte), record));
      continue;
    }
    if (source_->Peek() == '"') {  // a doubled quote stands for one
      source_->Get();
      RETURN_IF_ERROR(Append('"', record));
      continue;
    }
    // The closing quote: a delimiter or the end of the record must follow.
    const int after = source_->Get();
    if (after == options_.delimiter) return false;
    if (after == '\n' || after == kEnd) return true;
    if (after == '\r' && source_->Peek() == '\n') {
      source_->Get();
      return true;
    }
    return InvalidArgumentError(Where(source_->line(), source_->column()) + ": expected " +
                                DescribeByte(static_cast<unsigned char>(options_.delimiter)) +
                                " or a line end after a closing quote, found " + DescribeByte(after));
  }
}

Status CsvReader::RecordTooLong(const CsvRecord& record) const {
  return InvalidArgumentError(Where(record.line) + ": record longer than " +
                              std::to_string(options_.max_record_bytes) +
                              " bytes (CsvOptions.max_record_bytes): expected a shorter record, "
                              "or a missing closing quote");
}

std::string CsvReader::Where(int64_t line, int64_t column) const {
  if (!lines_known_) return path_ + ": record at byte " + std::to_string(record_offset_);
  std::string where = path_;
  where += ':';
  where += std::to_string(line);
  if (column > 0) {
    where += ':';
    where += std::to_string(column);
  }
  return where;
}

StatusOr<std::optional<float>> CsvReader::ParseFloat(const CsvRecord& record, int column) const {
  StatusOr<std::optional<float>> value = ParseFloatField(record.fields[column]);
  if (value.ok()) return value;
  return value.status().WithContext(Place(record) + ": column " + QuoteForMessage(columns_[column]));
}

std::string CsvReader::Place(const CsvRecord& record) const {
  if (!lines_known_) return path_ + ": record at byte " + std::to_string(record.offset);
  return path_ + ":" + std::to_string(record.line);
}

StatusOr<std::optional<float>> ParseFloatField(std::string_view field) {
  if (field.empty()) return std::optional<float>();
  std::string_view number = field;
  // from_chars takes a '-' but not a '+'; "+-1" stays an error.
  if (number.front() == '+' && number.size() > 1 && number[1] != '-') number.remove_prefix(1);
  float value = 0;
  const char* end = number.data() + number.size();
  const auto [stop, error] = std::from_chars(number.data(), end, value, std::chars_format::general);
  if (error == std::errc::result_out_of_range) {
    return InvalidArgumentError("expected a number within float range, got " + QuoteForMessage(field));
  }
  if (error != std::errc() || stop != end || !std::isfinite(value)) {
    return InvalidArgumentError("expected a finite number, got " + QuoteForMessage(field));
  }
  return std::optional<float>(value);
}

}  // namespace tessera
