#include "core/csv_reader.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

namespace tessera {
namespace {

constexpr int kEnd = -1;  // Source::Get and Peek at the end of the data (or after an error)
constexpr size_t kMaxBufferBytes = size_t{1} << 30;  // gzread counts in unsigned int
constexpr size_t kMaxQuotedChars = 64;               // of a field shown in a message
constexpr char kBom[] = "\xEF\xBB\xBF";

// A byte for a message: 'x', or a name for what does not print.
std::string Describe(int byte) {
  if (byte == kEnd) return "the end of the file";
  if (byte == '\t') return "a tab";
  if (byte == '\r') return "a carriage return";
  if (byte >= 0x20 && byte < 0x7f) return std::string("'") + static_cast<char>(byte) + "'";
  char text[16];
  std::snprintf(text, sizeof(text), "byte 0x%02x", byte);
  return text;
}

// `field` in double quotes for a message, cut short when long.
std::string Quoted(std::string_view field) {
  // Appended piece by piece: "\"" + std::string trips GCC 12's -Wrestrict.
  std::string quoted = "\"";
  for (char c : field.substr(0, kMaxQuotedChars)) {
    // Control characters are escaped so that a message stays one line.
    if (c == '\n') {
      quoted += "\\n";
    } else if (c == '\r') {
      quoted += "\\r";
    } else if (c == '\t') {
      quoted += "\\t";
    } else {
      quoted += c;
    }
  }
  if (field.size() > kMaxQuotedChars) quoted += "...";
  quoted += '"';
  return quoted;
}

}  // namespace

// The bytes of a plain or gzip'd file through one fixed buffer, counting
// offsets, lines and columns. A read error ends the data (Get returns kEnd)
// and is kept in status().
class CsvReader::Source {
 public:
  Source() = default;
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  ~Source() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Opens `path`. Returns NotFound when it does not exist.
  Status Open(const std::string& path, size_t buffer_bytes) {
    path_ = path;
    struct stat info;
    if (stat(path.c_str(), &info) != 0) {
      const int error = errno;
      if (error == ENOENT || error == ENOTDIR) return NotFoundError("CSV file not found: " + path);
      return FailedPreconditionError("cannot stat CSV file " + path + ": " + std::strerror(error));
    }
    if (S_ISDIR(info.st_mode)) return InvalidArgumentError("CSV path is a directory: " + path);
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      return FailedPreconditionError("cannot open CSV file " + path + ": " + std::strerror(errno));
    }
    gzbuffer(file_, 256u << 10);  // must come before gzdirect
    // zlib looks at the first two bytes: the gzip magic 1f 8b means
    // compressed, anything else is read as it is.
    compressed_ = gzdirect(file_) == 0;
    buffer_.resize(buffer_bytes);
    return OkStatus();
  }

  bool compressed() const { return compressed_; }
  const Status& status() const { return status_; }
  uint64_t offset() const { return offset_; }  // of the next byte
  int64_t line() const { return line_; }       // of the next byte
  int64_t column() const { return column_; }   // of the last byte read (1-based), 0 after a newline

  // Returns the next byte (0..255) and moves past it, or kEnd.
  int Get() {
    if (next_ == end_ && !Refill()) return kEnd;
    const unsigned char byte = buffer_[next_++];
    ++offset_;
    if (byte == '\n') {
      ++line_;
      column_ = 0;
    } else {
      ++column_;
    }
    return byte;
  }

  // Returns the next byte without moving past it, or kEnd.
  int Peek() {
    if (next_ == end_ && !Refill()) return kEnd;
    return static_cast<unsigned char>(buffer_[next_]);
  }

  // Moves past a UTF-8 byte-order mark at the very start, if there is one.
  void SkipByteOrderMark() {
    if (next_ == end_ && !Refill()) return;
    if (end_ - next_ >= 3 && std::memcmp(buffer_.data() + next_, kBom, 3) == 0) {
      next_ += 3;
      offset_ += 3;
    }
  }

  // Moves to byte `offset` of a plain file; line numbers stop counting.
  Status SeekTo(uint64_t offset) {
    if (gzseek(file_, static_cast<z_off_t>(offset), SEEK_SET) < 0) return StreamError();
    next_ = end_ = 0;
    offset_ = offset;
    return OkStatus();
  }

 private:
  // Fills the buffer; false at the end of the data or on an error (status_).
  bool Refill() {
    if (!status_.ok()) return false;
    const int got = gzread(file_, buffer_.data(), static_cast<unsigned>(buffer_.size()));
    // gzread reports a truncated gzip stream as a short read plus Z_BUF_ERROR.
    int code = Z_OK;
    gzerror(file_, &code);
    if (got < 0 || code != Z_OK) {
      status_ = StreamError();
      return false;
    }
    next_ = 0;
    end_ = static_cast<size_t>(got);
    return got > 0;
  }

  Status StreamError() const {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    std::string detail = message != nullptr && *message != '\0' ? message : "unknown error";
    if (detail.rfind(path_ + ": ", 0) == 0) detail.erase(0, path_.size() + 2);  // zlib names the file too
    const std::string after = " after " + std::to_string(offset_ + (end_ - next_)) + " bytes (" + detail + ")";
    if (code == Z_ERRNO) return UnavailableError("error reading CSV file " + path_ + ": " + std::strerror(errno));
    if (code == Z_BUF_ERROR) return DataLossError(path_ + ": compressed stream is truncated" + after);
    return DataLossError(path_ + ": corrupt compressed stream" + after);
  }

  std::string path_;
  gzFile file_ = nullptr;
  bool compressed_ = false;
  std::string buffer_;
  size_t next_ = 0, end_ = 0;  // the unread bytes are buffer_[next_, end_)
  uint64_t offset_ = 0;
  int64_t line_ = 1;
  int64_t column_ = 0;
  Status status_;
};

StatusOr<std::unique_ptr<CsvReader>> CsvReader::Open(const std::string& path, const CsvOptions& options) {
  const char delimiter = options.delimiter;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
    return InvalidArgumentError("CsvOptions.delimiter: expected a character other than a quote or a line end, got " +
                                Describe(static_cast<unsigned char>(delimiter)));
  }
  if (options.buffer_bytes < 4 || options.buffer_bytes > kMaxBufferBytes) {
    return InvalidArgumentError("CsvOptions.buffer_bytes: expected 4 to " + std::to_string(kMaxBufferBytes) +
                                ", got " + std::to_string(options.buffer_bytes));
  }
  if (options.max_record_bytes < 1) return InvalidArgumentError("CsvOptions.max_record_bytes: expected at least 1, got 0");

  auto source = std::make_unique<Source>();
  RETURN_IF_ERROR(source->Open(path, options.buffer_bytes));
  if (options.start_offset > 0 && source->compressed()) {
    return InvalidArgumentError(path + ": a start offset needs a plain file, and this one is gzip'd");
  }
  std::unique_ptr<CsvReader> reader(new CsvReader(path, options, std::move(source)));
  RETURN_IF_ERROR(reader->ReadHeader());
  RETURN_IF_ERROR(reader->SkipToStartOffset());
  return reader;
}

CsvReader::CsvReader(std::string path, const CsvOptions& options, std::unique_ptr<Source> source)
    : path_(std::move(path)), options_(options), source_(std::move(source)) {}

CsvReader::~CsvReader() = default;

bool CsvReader::compressed() const { return source_->compressed(); }

Status CsvReader::ReadHeader() {
  source_->SkipByteOrderMark();
  CsvRecord header;
  ASSIGN_OR_RETURN(const bool found, ReadRecord(&header));
  if (!found) return InvalidArgumentError(path_ + ": empty file: expected a header row naming the columns");
  std::map<std::string_view, size_t> seen;
  for (size_t i = 0; i < header.fields.size(); ++i) {
    const auto [it, added] = seen.emplace(header.fields[i], i);
    if (!added) {
      return InvalidArgumentError(Where(header.line) + ": columns " + std::to_string(it->second + 1) + " and " +
                                  std::to_string(i + 1) + " are both named " + Quoted(header.fields[i]));
    }
  }
  columns_.assign(header.fields.begin(), header.fields.end());
  return OkStatus();
}

Status CsvReader::SkipToStartOffset() {
  if (options_.start_offset <= source_->offset()) return OkStatus();
  // A record starts right after a newline: find the first newline at or
  // after start_offset - 1, so that a record beginning exactly at
  // start_offset is kept.
  lines_known_ = false;
  RETURN_IF_ERROR(source_->SeekTo(options_.start_offset - 1));
  int byte = source_->Get();
  while (byte != '\n' && byte != kEnd) byte = source_->Get();
  return source_->status();
}

StatusOr<int> CsvReader::ColumnIndex(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i] == name) return static_cast<int>(i);
  }
  return NotFoundError(path_ + ": no column named " + Quoted(name) + " in the header (" +
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
                                " fields, expected " + std::to_string(columns_.size()) + " (the header's)");
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
    if (byte == '"') {
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
    if (byte == '"') {
      return InvalidArgumentError(Where(source_->line(), source_->column()) +
                                  ": quote inside an unquoted field: expected the whole field in quotes, "
                                  "with each quote inside it doubled");
    }
    RETURN_IF_ERROR(Append(static_cast<char>(byte), record));
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
                                Describe(static_cast<unsigned char>(options_.delimiter)) +
                                " or a line end after a closing quote, found " + Describe(after));
  }
}

Status CsvReader::Append(char byte, CsvRecord* record) {
  RETURN_IF_ERROR(CheckRecordSize(*record));
  record->text.push_back(byte);
  return OkStatus();
}

Status CsvReader::CheckRecordSize(const CsvRecord& record) const {
  // Each field counts one byte besides its text: field_ends_ grows with it.
  if (record.text.size() + field_ends_.size() >= options_.max_record_bytes) {
    return InvalidArgumentError(Where(record.line) + ": record longer than " +
                                std::to_string(options_.max_record_bytes) +
                                " bytes (CsvOptions.max_record_bytes): expected a shorter record, "
                                "or a missing closing quote");
  }
  return OkStatus();
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
  return value.status().WithContext(Place(record) + ": column " + Quoted(columns_[column]));
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
    return InvalidArgumentError("expected a number within float range, got " + Quoted(field));
  }
  if (error != std::errc() || stop != end || !std::isfinite(value)) {
    return InvalidArgumentError("expected a finite number, got " + Quoted(field));
  }
  return std::optional<float>(value);
}

}  // namespace tessera
