// The bytes of a plain or gzip'd file, one at a time through one fixed
// buffer, for the streaming text readers (CsvReader, LibsvmReader); and the
// helpers their one-line error messages share.
#ifndef TESSERA_CORE_BYTE_SOURCE_H_
#define TESSERA_CORE_BYTE_SOURCE_H_

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tessera {

// Reads a plain or gzip'd file (found by the gzip magic) through one buffer,
// counting offsets in the uncompressed stream, lines and columns. A read
// error ends the data (Get returns kEnd) and is kept in status(). Not
// thread-safe; owns its open file.
class ByteSource {
 public:
  static constexpr int kEnd = -1;  // Get and Peek at the end of the data (or after an error)
  static constexpr size_t kMaxBufferBytes = size_t{1} << 30;  // gzread counts in unsigned int

  ByteSource() = default;
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;
  ~ByteSource();

  // Opens `path` with a buffer of `buffer_bytes` (1 to kMaxBufferBytes).
  // `kind` names the format in messages: "CSV file not found: PATH". Returns
  // NotFound when the file does not exist, InvalidArgument for a directory,
  // FailedPrecondition when it cannot be opened.
  Status Open(const std::string& path, size_t buffer_bytes, std::string_view kind);

  bool compressed() const { return compressed_; }
  // Why the data ended early: DataLoss for a truncated or corrupt gzip
  // stream, Unavailable for a read error; OK otherwise.
  const Status& status() const { return status_; }
  uint64_t offset() const { return offset_; }  // of the next byte
  int64_t line() const { return line_; }       // of the next byte (1-based; not counted after a seek)
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

  // The fast path of a text reader: moves past the bytes before the next
  // '\n', '\r', '"' or `delimiter` (or the end of the data), at most `limit`
  // of them, appending them to *out, and returns how many. Reads buffer by
  // buffer instead of byte by byte; the stop byte itself is left for Get.
  size_t AppendPlainRun(char delimiter, size_t limit, std::string* out);

  // Moves past a UTF-8 byte-order mark at the very start, if there is one.
  void SkipByteOrderMark();

  // Moves to the first line of a plain file that begins at or after byte
  // `offset` (a line begins at byte 0 or right after a newline); past the
  // end of the file, to the end. line() stops counting: it is not known
  // without reading what comes before.
  Status SeekToLineAtOrAfter(uint64_t offset);

 private:
  Status SeekTo(uint64_t offset);
  void SetPlainRunStops(char delimiter);
  // Fills the buffer; false at the end of the data or on an error (status_).
  bool Refill();
  Status StreamError() const;

  std::string path_;
  std::string kind_;
  gzFile file_ = nullptr;
  bool compressed_ = false;
  std::string buffer_;
  size_t next_ = 0, end_ = 0;  // the unread bytes are buffer_[next_, end_)
  uint64_t offset_ = 0;
  int64_t line_ = 1;
  int64_t column_ = 0;
  Status status_;
  // AppendPlainRun's stop bytes, built for plain_run_delimiter_ (-1: not yet).
  std::array<bool, 256> plain_run_stops_{};
  int plain_run_delimiter_ = -1;
};

// A byte for a message: 'x', or a name for what does not print ("a tab",
// "byte 0x01", "the end of the file" for ByteSource::kEnd).
std::string DescribeByte(int byte);

// `text` in double quotes for a message, control characters escaped (so that
// a message stays one line) and cut short with "..." after 64 characters.
std::string QuoteForMessage(std::string_view text);

}  // namespace tessera

#endif  // TESSERA_CORE_BYTE_SOURCE_H_
