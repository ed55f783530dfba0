#include "core/byte_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tessera {
namespace {

constexpr size_t kMaxQuotedChars = 64;  // of a text shown in a message
constexpr char kBom[] = "\xEF\xBB\xBF";

}  // namespace

ByteSource::~ByteSource() {
  if (file_ != nullptr) gzclose(file_);
}

Status ByteSource::Open(const std::string& path, size_t buffer_bytes, std::string_view kind) {
  path_ = path;
  kind_ = kind;
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(kind_ + " file not found: " + path);
    return FailedPreconditionError("cannot stat " + kind_ + " file " + path + ": " + std::strerror(error));
  }
  if (S_ISDIR(info.st_mode)) return InvalidArgumentError(kind_ + " path is a directory: " + path);
  file_ = gzopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    return FailedPreconditionError("cannot open " + kind_ + " file " + path + ": " + std::strerror(errno));
  }
  gzbuffer(file_, 256u << 10);  // must come before gzdirect
  // zlib looks at the first two bytes: the gzip magic 1f 8b means
  // compressed, anything else is read as it is.
  compressed_ = gzdirect(file_) == 0;
  buffer_.resize(buffer_bytes);
  return OkStatus();
}

void ByteSource::SkipByteOrderMark() {
  if (next_ == end_ && !Refill()) return;
  if (end_ - next_ >= 3 && std::memcmp(buffer_.data() + next_, kBom, 3) == 0) {
    next_ += 3;
    offset_ += 3;
  }
}

size_t ByteSource::AppendPlainRun(char delimiter, size_t limit, std::string* out) {
  size_t taken = 0;
  while (taken < limit && (next_ != end_ || Refill())) {
    const char* begin = buffer_.data() + next_;
    const size_t available = std::min(end_ - next_, limit - taken);
    // One table lookup per byte instead of four comparisons.
    if (delimiter != plain_run_delimiter_) SetPlainRunStops(delimiter);
    size_t n = 0;
    while (n < available && !plain_run_stops_[static_cast<unsigned char>(begin[n])]) ++n;
    out->append(begin, n);
    next_ += n;
    offset_ += n;
    column_ += static_cast<int64_t>(n);  // no newline among them
    taken += n;
    if (n < available) break;  // at a stop byte
  }
  return taken;
}

void ByteSource::SetPlainRunStops(char delimiter) {
  plain_run_stops_.fill(false);
  for (const char stop : {delimiter, '\n', '\r', '"'}) plain_run_stops_[static_cast<unsigned char>(stop)] = true;
  plain_run_delimiter_ = delimiter;
}

Status ByteSource::SeekToLineAtOrAfter(uint64_t offset) {
  if (offset == 0) return SeekTo(0);
  // A line begins right after a newline: find the first newline at or after
  // offset - 1, so that a line beginning exactly at `offset` is kept.
  RETURN_IF_ERROR(SeekTo(offset - 1));
  int byte = Get();
  while (byte != '\n' && byte != kEnd) byte = Get();
  return status_;
}

Status ByteSource::SeekTo(uint64_t offset) {
  if (gzseek(file_, static_cast<z_off_t>(offset), SEEK_SET) < 0) return StreamError();
  next_ = end_ = 0;
  offset_ = offset;
  return OkStatus();
}

bool ByteSource::Refill() {
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

Status ByteSource::StreamError() const {
  int code = Z_OK;
  const char* message = gzerror(file_, &code);
  std::string detail = message != nullptr && *message != '\0' ? message : "unknown error";
  if (detail.rfind(path_ + ": ", 0) == 0) detail.erase(0, path_.size() + 2);  // zlib names the file too
  const std::string after = " after " + std::to_string(offset_ + (end_ - next_)) + " bytes (" + detail + ")";
  if (code == Z_ERRNO) return UnavailableError("error reading " + kind_ + " file " + path_ + ": " + std::strerror(errno));
  if (code == Z_BUF_ERROR) return DataLossError(path_ + ": compressed stream is truncated" + after);
  return DataLossError(path_ + ": corrupt compressed stream" + after);
}

std::string DescribeByte(int byte) {
  if (byte == ByteSource::kEnd) return "the end of the file";
  if (byte == '\t') return "a tab";
  if (byte == '\r') return "a carriage return";
  if (byte >= 0x20 && byte < 0x7f) return std::string("'") + static_cast<char>(byte) + "'";
  char text[16];
  std::snprintf(text, sizeof(text), "byte 0x%02x", byte);
  return text;
}

std::string QuoteForMessage(std::string_view text) {
  // Appended piece by piece: "\"" + std::string trips GCC 12's -Wrestrict.
  std::string quoted = "\"";
  for (char c : text.substr(0, kMaxQuotedChars)) {
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
  if (text.size() > kMaxQuotedChars) quoted += "...";
  quoted += '"';
  return quoted;
}

}  // namespace tessera
