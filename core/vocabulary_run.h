// A vocabulary count run: a column's (value, count) pairs sorted by value,
// which VocabularyCounter spills to a temp file when it holds too many
// distinct values in memory, and reads back once to merge them. Internal:
// written and read by the same process, removed with its temp directory
// (docs/FORMATS.md, "Vocabulary count runs").
//
// Layout, little-endian: the magic `TVR1`, a u64 count of entries, then each
// entry: a u32 length, the value's bytes (not empty), a u64 count (>= 1).
// Values strictly increase bytewise; nothing follows the last entry.
#ifndef TESSERA_CORE_VOCABULARY_RUN_H_
#define TESSERA_CORE_VOCABULARY_RUN_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/file_system.h"
#include "core/status.h"

namespace tessera {

struct VocabularyEntry {
  std::string_view value;
  int64_t count = 0;
};

// Writes `entries` as a run at `path` through *fs, in pieces of about 1 MiB.
// REQUIRES: values not empty and strictly increasing, counts >= 1.
// Unavailable (ResourceExhausted for a full disk) naming the file on failure.
Status WriteVocabularyRun(FileSystem* fs, const std::string& path, const std::vector<VocabularyEntry>& entries);

// Reads a run back, entry by entry, through a fixed buffer, checking every
// length against the bytes left before reading it. Not thread-safe; owns its
// open file.
class VocabularyRunReader {
 public:
  // NotFound when `path` cannot be opened; DataLoss naming it when its
  // header is not a run's.
  static StatusOr<std::unique_ptr<VocabularyRunReader>> Open(const std::string& path);

  VocabularyRunReader(const VocabularyRunReader&) = delete;
  VocabularyRunReader& operator=(const VocabularyRunReader&) = delete;
  ~VocabularyRunReader();

  // Moves to the next entry: true when there is one (value(), count()),
  // false after the last. DataLoss naming the file and the byte offset when
  // the bytes break the layout (cut short, a length past the end, an empty,
  // repeated or out-of-order value, a count of 0 or above 2^63 - 1, bytes
  // after the last entry), or on a read error.
  StatusOr<bool> Next();
  std::string_view value() const { return value_; }
  int64_t count() const { return count_; }

 private:
  VocabularyRunReader(std::string path, std::FILE* file, uint64_t size)
      : path_(std::move(path)), file_(file), size_(size) {}
  // Reads exactly `n` bytes into `out`, or DataLoss saying what was cut short.
  Status ReadExact(void* out, uint64_t n, const char* what);
  Status ReadU32(uint32_t* v, const char* what);
  Status ReadU64(uint64_t* v, const char* what);
  Status Corrupt(const std::string& problem) const;

  const std::string path_;
  std::FILE* file_;
  const uint64_t size_;
  uint64_t offset_ = 0;  // of the next byte
  uint64_t entries_left_ = 0;
  std::string value_, previous_;
  int64_t count_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_CORE_VOCABULARY_RUN_H_
