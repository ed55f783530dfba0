#include "core/vocabulary_run.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace tessera {
namespace {

constexpr char kMagic[4] = {'T', 'V', 'R', '1'};
constexpr size_t kWritePieceBytes = size_t{1} << 20;
// The read buffer of each open run: a merge holds one per run.
constexpr size_t kReadBufferBytes = size_t{64} << 10;
// The smallest entry: a length, one byte of value, a count.
constexpr uint64_t kMinEntryBytes = 4 + 1 + 8;

void AppendU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void AppendU64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

Status WriteVocabularyRun(FileSystem* fs, const std::string& path, const std::vector<VocabularyEntry>& entries) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileSystem::WritableFile> file, fs->NewWritableFile(path));
  std::string piece(kMagic, sizeof(kMagic));
  AppendU64(entries.size(), &piece);
  for (const VocabularyEntry& e : entries) {
    AppendU32(static_cast<uint32_t>(e.value.size()), &piece);
    piece.append(e.value);
    AppendU64(static_cast<uint64_t>(e.count), &piece);
    if (piece.size() >= kWritePieceBytes) {
      RETURN_IF_ERROR(file->Append(piece));
      piece.clear();
    }
  }
  RETURN_IF_ERROR(file->Append(piece));
  // No fsync: a run is read back by this process only, and a crash loses the scan anyway.
  return file->Close();
}

StatusOr<std::unique_ptr<VocabularyRunReader>> VocabularyRunReader::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rbe");
  if (file == nullptr) return NotFoundError("cannot open vocabulary run " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fileno(file), &st) != 0) {
    const std::string error = std::strerror(errno);
    std::fclose(file);
    return DataLossError("cannot stat vocabulary run " + path + ": " + error);
  }
  std::setvbuf(file, nullptr, _IOFBF, kReadBufferBytes);
  std::unique_ptr<VocabularyRunReader> reader(new VocabularyRunReader(path, file, static_cast<uint64_t>(st.st_size)));
  char magic[sizeof(kMagic)];
  RETURN_IF_ERROR(reader->ReadExact(magic, sizeof(magic), "the magic"));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) return reader->Corrupt("not a vocabulary run (bad magic)");
  RETURN_IF_ERROR(reader->ReadU64(&reader->entries_left_, "the entry count"));
  if (reader->entries_left_ > (reader->size_ - reader->offset_) / kMinEntryBytes) {
    return reader->Corrupt(std::to_string(reader->entries_left_) + " entries cannot fit in the " +
                           std::to_string(reader->size_ - reader->offset_) + " bytes left");
  }
  return reader;
}

VocabularyRunReader::~VocabularyRunReader() { std::fclose(file_); }

StatusOr<bool> VocabularyRunReader::Next() {
  if (entries_left_ == 0) {
    if (offset_ != size_) return Corrupt(std::to_string(size_ - offset_) + " bytes after the last entry");
    return false;
  }
  uint32_t length = 0;
  RETURN_IF_ERROR(ReadU32(&length, "an entry's length"));
  if (length == 0) return Corrupt("an empty value");
  if (length > size_ - offset_) {
    return Corrupt("a value of " + std::to_string(length) + " bytes where " + std::to_string(size_ - offset_) +
                   " are left");
  }
  previous_.swap(value_);
  value_.resize(length);
  RETURN_IF_ERROR(ReadExact(value_.data(), length, "a value"));
  if (!previous_.empty() && !(previous_ < value_)) return Corrupt("values out of order");
  uint64_t count = 0;
  RETURN_IF_ERROR(ReadU64(&count, "a count"));
  if (count == 0 || count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Corrupt("a count of " + std::to_string(count));
  }
  count_ = static_cast<int64_t>(count);
  --entries_left_;
  return true;
}

Status VocabularyRunReader::ReadExact(void* out, uint64_t n, const char* what) {
  if (n > size_ - offset_) return Corrupt(std::string("cut short in ") + what);
  if (std::fread(out, 1, n, file_) != n) {
    return Corrupt(std::string("cannot read ") + what + (std::ferror(file_) ? ": read error" : ": cut short"));
  }
  offset_ += n;
  return OkStatus();
}

Status VocabularyRunReader::ReadU32(uint32_t* v, const char* what) {
  unsigned char bytes[4];
  RETURN_IF_ERROR(ReadExact(bytes, sizeof(bytes), what));
  *v = 0;
  for (int i = 3; i >= 0; --i) *v = (*v << 8) | bytes[i];
  return OkStatus();
}

Status VocabularyRunReader::ReadU64(uint64_t* v, const char* what) {
  unsigned char bytes[8];
  RETURN_IF_ERROR(ReadExact(bytes, sizeof(bytes), what));
  *v = 0;
  for (int i = 7; i >= 0; --i) *v = (*v << 8) | bytes[i];
  return OkStatus();
}

Status VocabularyRunReader::Corrupt(const std::string& problem) const {
  return DataLossError("vocabulary run " + path_ + " at byte " + std::to_string(offset_) + ": " + problem);
}

}  // namespace tessera
