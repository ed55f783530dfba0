// A streaming reader of CSV and TSV files (RFC 4180), plain or gzip'd.
//
// The first row is the header: it names the columns, and every later record
// must have as many fields (a file without one: CsvOptions.column_names). Fields may be quoted ("a,b", "say ""hi""", a
// newline inside quotes); lines end in LF or CRLF; the last one may lack its
// newline; a UTF-8 byte-order mark at the start is skipped; empty lines are
// skipped (so a one-column file writes an empty value as "").
//
// Memory is bounded whatever the file size: one read buffer of
// CsvOptions::buffer_bytes and one record (at most max_record_bytes).
//
// Example:
//   ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, CsvReader::Open(path));
//   ASSIGN_OR_RETURN(int label, reader->ColumnIndex("label"));
//   CsvRecord record;
//   while (true) {
//     ASSIGN_OR_RETURN(bool more, reader->Next(&record));
//     if (!more) break;
//     ... record.fields[label] ...
//   }
#ifndef TESSERA_CORE_CSV_READER_H_
#define TESSERA_CORE_CSV_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tessera {

class ByteSource;

struct CsvOptions {
  // The field separator: ',' for CSV (the default), '\t' for TSV.
  char delimiter = ',';
  // Bytes read from the file at a time. Default 1 MiB; at least 4.
  size_t buffer_bytes = size_t{1} << 20;
  // The most bytes one record may hold (its field text plus one per field);
  // a longer record is InvalidArgument, so that a stray quote cannot swallow
  // the file into memory. Default 64 MiB.
  size_t max_record_bytes = size_t{64} << 20;
  // Byte offset of a plain (not gzip'd) file: reading starts at the first
  // record that begins at or after it (0, the default: the first record after
  // the header). The header is always read from the start of the file.
  // REQUIRES for a start inside the data: no quoted field holds a newline
  // (a start is found by the next newline, and a quoted one looks the same).
  // Line numbers are unknown after such a start: CsvRecord::line is 0 and
  // errors name the record's byte offset instead.
  uint64_t start_offset = 0;
  // A file without a header row (Criteo's click logs): its column names.
  // Empty (the default): the first row names the columns. Given: every row
  // is a record, and the names must be distinct.
  std::vector<std::string> column_names;
  // True (the default): '"' quotes a field (RFC 4180). False: a quote is a
  // byte like any other, as in files that never quote (tab-separated logs).
  bool quoting = true;
};

// One record. The fields point into `text`, which is reused from record to
// record: they are valid until the next CsvReader::Next on this record.
struct CsvRecord {
  std::vector<std::string_view> fields;
  int64_t line = 0;     // the 1-based physical line the record starts on; 0 when unknown
  uint64_t offset = 0;  // the byte offset, in the uncompressed stream, where the record starts
  std::string text;     // the fields' bytes, one after another; owned here
};

// Reads one file from start to end. Not thread-safe (one reader per thread);
// owns its open file.
class CsvReader {
 public:
  // Opens `path` and reads its header. On failure returns NotFound when the
  // file does not exist; InvalidArgument for bad options, an empty file, a
  // header whose two columns share a name or that breaks the rules Next
  // states, or a start_offset on a gzip'd file; DataLoss for a corrupt or
  // truncated gzip stream; FailedPrecondition or Unavailable when the file
  // cannot be opened or read. Messages name the file (and line).
  static StatusOr<std::unique_ptr<CsvReader>> Open(const std::string& path, const CsvOptions& options = {});

  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;
  ~CsvReader();

  const std::string& path() const { return path_; }

  // True for a gzip'd file (which cannot start at a byte offset).
  bool compressed() const;

  // The header's column names, in file order.
  const std::vector<std::string>& Columns() const { return columns_; }

  // The 0-based index of the column named `name`; NotFound naming the column
  // and the file when the header has none.
  StatusOr<int> ColumnIndex(std::string_view name) const;

  // Reads the next record into *record. Returns true for a record and false
  // at the end of the file. On failure returns one line "FILE:LINE[:COLUMN]:
  // what was expected, what was found":
  //   InvalidArgument for a record whose field count differs from the
  //     header's (the reader stays usable: the caller may skip the record),
  //     an unterminated quote, a quote inside an unquoted field, a character
  //     other than a delimiter or line end after a closing quote, or a record
  //     over max_record_bytes;
  //   DataLoss for a truncated or corrupt gzip stream, Unavailable for a
  //     read error.
  // After any error but the field count, every later call returns it again.
  StatusOr<bool> Next(CsvRecord* record);

  // True after an error Next cannot read past (any but a wrong field count).
  bool failed() const { return !sticky_error_.ok(); }

  // The value of record.fields[column] (ParseFloatField), its errors naming
  // the file, the line and the column: "FILE:LINE: column 'x': ...".
  // REQUIRES: 0 <= column < Columns().size() == record.fields.size().
  StatusOr<std::optional<float>> ParseFloat(const CsvRecord& record, int column) const;

  // Where `record` is, for a message: "FILE:LINE", or "FILE: record at byte
  // N" when lines are unknown (after a start_offset).
  std::string Place(const CsvRecord& record) const;

 private:
  CsvReader(std::string path, const CsvOptions& options, std::unique_ptr<ByteSource> source);

  Status ReadHeader();
  Status TakeColumnNames();
  Status SkipToStartOffset();
  StatusOr<bool> ReadRecord(CsvRecord* record);
  StatusOr<bool> ReadQuotedField(CsvRecord* record);
  StatusOr<bool> ReadUnquotedField(int first, CsvRecord* record);
  Status Append(char byte, CsvRecord* record) {
    RETURN_IF_ERROR(CheckRecordSize(*record));
    record->text.push_back(byte);
    return OkStatus();
  }
  // Inline: it runs for every field. Each field counts one byte besides its
  // text: field_ends_ grows with it.
  Status CheckRecordSize(const CsvRecord& record) const {
    if (record.text.size() + field_ends_.size() < options_.max_record_bytes) return OkStatus();
    return RecordTooLong(record);
  }
  Status RecordTooLong(const CsvRecord& record) const;

  // "FILE:LINE" for the record being read ("FILE:LINE:COLUMN" with a column),
  // or "FILE: record at byte N" when lines are unknown.
  std::string Where(int64_t line, int64_t column = 0) const;

  const std::string path_;
  const CsvOptions options_;
  std::unique_ptr<ByteSource> source_;
  std::vector<std::string> columns_;
  std::vector<size_t> field_ends_;  // reused: the end of each field in CsvRecord::text
  bool lines_known_ = true;         // false after a start inside the data
  uint64_t record_offset_ = 0;      // where the record being read starts
  Status sticky_error_;             // a parse or stream error: the reader cannot go on
};

// The value of a numeric field, strictly: the whole field must be one finite
// number in float range as std::from_chars reads it (an optional leading '+'
// allowed; no spaces, no "nan" or "inf"). An empty field returns nullopt, a
// missing value the caller may fill. Otherwise returns InvalidArgument:
// "expected a finite number, got \"abc\"".
StatusOr<std::optional<float>> ParseFloatField(std::string_view field);

}  // namespace tessera

#endif  // TESSERA_CORE_CSV_READER_H_
