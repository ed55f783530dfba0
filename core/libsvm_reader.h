// A streaming reader of libsvm / svmlight files, plain or gzip'd.
//
// Each line is one record: `label [qid:N] index:value index:value ... [# comment]`.
//   - Tokens are separated by spaces or tabs (any number; leading and
//     trailing ones too).
//   - The label is a finite number (ParseFloatField: "1", "-1", "+1", "2.5",
//     "1e3"), kept as a float: integers are exact up to 2^24. A classifier
//     maps it to a class itself.
//   - `qid:N` may follow the label (svmlight's query id, for ranking); N is an
//     integer 0 to 2^64-1. It is kept in LibsvmRecord::qid; anywhere else
//     on the line it is an error.
//   - Each feature is index:value, no spaces around the ':'. The index is an
//     integer 0 to 2^64-1 (digits only). libsvm's own files start at 1, but
//     many writers (scikit-learn's zero_based=True among them) start at 0, so
//     0 is accepted unless LibsvmOptions::allow_index_zero is false; the
//     caller decides what the indices mean. Indices strictly increase along
//     a line: a repeated or smaller index is an error. The value is a finite
//     number in float range (ParseFloatField; no "nan", "inf" or empty value).
//   - A label with no features is a record of all zeros.
//   - A '#' starts a comment that runs to the end of the line, wherever it is
//     (as in scikit-learn's reader); a line with nothing but spaces and tabs
//     before its comment, a blank line, is skipped.
//   - Lines end in LF or CRLF; the last one may lack its newline; a UTF-8
//     byte-order mark at the start is skipped.
//
// Memory is bounded whatever the file size: one read buffer of
// LibsvmOptions::buffer_bytes, one line (at most max_line_bytes) and its
// features.
//
// Example:
//   ASSIGN_OR_RETURN(std::unique_ptr<LibsvmReader> reader, LibsvmReader::Open(path));
//   LibsvmRecord record;
//   while (true) {
//     ASSIGN_OR_RETURN(bool more, reader->Next(&record));
//     if (!more) break;
//     ... record.label, record.features[i].index, record.features[i].value ...
//   }
#ifndef TESSERA_CORE_LIBSVM_READER_H_
#define TESSERA_CORE_LIBSVM_READER_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tessera {

class ByteSource;

struct LibsvmOptions {
  // Bytes read from the file at a time. Default 1 MiB; at least 4.
  size_t buffer_bytes = size_t{1} << 20;
  // The most bytes one line may hold before its comment (the comment and the
  // line end are not counted, nor kept in memory); a longer line is
  // InvalidArgument. Default 64 MiB; at least 1.
  size_t max_line_bytes = size_t{64} << 20;
  // The most features one line may hold; more is InvalidArgument. Default:
  // no limit but max_line_bytes's.
  size_t max_features = std::numeric_limits<size_t>::max();
  // Whether a feature index may be 0 (true, the default) or must be at least
  // 1, as libsvm's own format says.
  bool allow_index_zero = true;
  // Byte offset of a plain (not gzip'd) file: reading starts at the first
  // line that begins at or after it (0, the default: the start of the file).
  // Line numbers are unknown after such a start: LibsvmRecord::line is 0 and
  // errors name the record's byte offset instead.
  uint64_t start_offset = 0;
};

struct LibsvmFeature {
  uint64_t index = 0;
  float value = 0;

  bool operator==(const LibsvmFeature&) const = default;
};

// One record. `features` is reused from record to record (its capacity
// stays): copy what must outlive the next LibsvmReader::Next.
struct LibsvmRecord {
  float label = 0;
  std::optional<uint64_t> qid;          // the qid:N after the label, if there is one
  std::vector<LibsvmFeature> features;  // in file order: indices strictly increase
  int64_t line = 0;                     // the 1-based line of the record; 0 when unknown
  uint64_t offset = 0;                  // the byte offset, in the uncompressed stream, where the line starts
};

// Reads one file from start to end. Not thread-safe (one reader per thread);
// owns its open file.
class LibsvmReader {
 public:
  // Opens `path`. On failure returns NotFound when the file does not exist;
  // InvalidArgument for bad options, a directory, or a start_offset on a
  // gzip'd file; FailedPrecondition or Unavailable when the file cannot be
  // opened or read. A corrupt gzip stream shows at the first Next.
  static StatusOr<std::unique_ptr<LibsvmReader>> Open(const std::string& path, const LibsvmOptions& options = {});

  LibsvmReader(const LibsvmReader&) = delete;
  LibsvmReader& operator=(const LibsvmReader&) = delete;
  ~LibsvmReader();

  const std::string& path() const { return path_; }
  // Whether the file is gzip'd (its offsets cannot serve as a start_offset).
  bool compressed() const;
  // "FILE:LINE" of a record this reader returned, or "FILE: record at byte
  // N" when lines are unknown (after a start_offset): for a caller's own
  // messages about the record.
  std::string Where(const LibsvmRecord& record) const;

  // Reads the next record into *record, skipping blank and comment lines.
  // Returns true for a record and false at the end of the file. On failure
  // returns one line naming the file and line (or, after a start_offset, the
  // record's byte offset), the token at fault, what was expected and what
  // was found: "a.svm:7: feature \"3:x\": expected a finite number, got \"x\"".
  //   InvalidArgument for a line that breaks a rule at the top of this file
  //     or is over a limit of LibsvmOptions. The reader has moved past that
  //     line and stays usable: the caller may skip it by calling Next again.
  //     *record then holds the line's line and offset; the rest is unspecified.
  //   DataLoss for a truncated or corrupt gzip stream, Unavailable for a
  //     read error. Every later call returns it again.
  StatusOr<bool> Next(LibsvmRecord* record);

 private:
  LibsvmReader(std::string path, const LibsvmOptions& options, std::unique_ptr<ByteSource> source);

  StatusOr<bool> ReadLine(LibsvmRecord* record);
  Status ParseLine(LibsvmRecord* record) const;
  Status ParseLabel(std::string_view token, LibsvmRecord* record) const;
  Status ParseQid(std::string_view token, LibsvmRecord* record) const;
  Status ParseFeature(std::string_view token, LibsvmRecord* record) const;

  const std::string path_;
  const LibsvmOptions options_;
  std::unique_ptr<ByteSource> source_;
  std::string line_;            // reused: the line being read, up to its comment, without its line end
  bool line_too_long_ = false;  // it had more than max_line_bytes before its comment
  bool lines_known_ = true;     // false after a start inside the file
  Status sticky_error_;         // a stream error: the reader cannot go on
};

// Where the records of a file are, for splitting it into shards.
struct LibsvmFileIndex {
  int64_t records = 0;
  // The byte offsets of records 0, every, 2*every, ...: a reader of a plain
  // file with LibsvmOptions::start_offset = offsets[i] starts at record
  // i*every.
  std::vector<uint64_t> offsets;
};

// Reads the whole file with `options` (so each line is checked) and counts
// its records, noting the offset of every `every`-th one. A gzip'd file is
// counted too, but its offsets (in the uncompressed stream) cannot serve as
// a start_offset. Returns InvalidArgument for `every` < 1, else the first
// error LibsvmReader::Open or Next returns.
StatusOr<LibsvmFileIndex> IndexLibsvmFile(const std::string& path, int64_t every, const LibsvmOptions& options = {});

}  // namespace tessera

#endif  // TESSERA_CORE_LIBSVM_READER_H_
