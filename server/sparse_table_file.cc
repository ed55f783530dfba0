#include "server/sparse_table_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tessera {

namespace {

constexpr char kMagic[4] = {'T', 'S', 'P', 'T'};
constexpr uint32_t kVersion = 2;
// Bounds on the header's fields, checked before anything is allocated.
constexpr uint32_t kMaxNameBytes = 64;
constexpr uint32_t kMaxBaseNameBytes = 256;
constexpr int kMaxRowFloats = 1024 * 3;  // dim <= 1024, at most 2 floats of state per value
constexpr uint32_t kMaxAdmissionBytes = 1u << 31;
constexpr size_t kRowsPerBlock = 4096;
constexpr uint32_t kFull = 0, kIncremental = 1;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

template <typename T>
void Append(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void AppendString(std::string* out, const std::string& s) {
  Append(out, static_cast<uint32_t>(s.size()));
  *out += s;
}

Status WriteAll(std::FILE* f, const void* data, size_t size, const std::string& path) {
  if (size > 0 && std::fwrite(data, 1, size, f) != size) {
    return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  }
  return OkStatus();
}

// Reads exactly `size` bytes; false at a short read.
bool ReadExactly(std::FILE* f, void* data, size_t size) { return size == 0 || std::fread(data, 1, size, f) == size; }

template <typename T>
bool ReadValue(std::FILE* f, T* value) {
  return ReadExactly(f, value, sizeof(T));
}

// A string of at most `max` bytes (and no more than the file has).
bool ReadString(std::FILE* f, uint32_t max, long file_size, std::string* s) {
  uint32_t bytes = 0;
  if (!ReadValue(f, &bytes) || bytes > max || static_cast<long>(bytes) > file_size) return false;
  s->resize(bytes);
  return ReadExactly(f, s->data(), bytes);
}

// The header's bytes up to the admission sightings' end (the counts follow).
std::string HeaderBytes(const SparseTableSnapshot& s, const SparseTableFileBase* base) {
  std::string header(kMagic, sizeof(kMagic));
  Append(&header, kVersion);
  AppendString(&header, s.name);
  Append(&header, static_cast<int32_t>(s.dim));
  Append(&header, static_cast<int32_t>(s.state_floats));
  Append(&header, static_cast<int32_t>(s.optimizer_type));
  Append(&header, static_cast<int64_t>(s.step));
  Append(&header, static_cast<int64_t>(s.latest_step));
  Append(&header, base == nullptr ? kFull : kIncremental);
  Append(&header, base == nullptr ? uint32_t{1} : base->chain_length + 1);
  Append(&header, base == nullptr ? int64_t{0} : base->step);
  AppendString(&header, base == nullptr ? std::string() : base->file);
  AppendString(&header, base == nullptr ? std::string() : base->checkpoint);
  AppendString(&header, s.admission);
  return header;
}

}  // namespace

std::string SparseTableFileName(int table) { return "sparse-" + std::to_string(table) + ".rows"; }

std::string SparseChainFileName(int table, int64_t step) {
  return "sparse-" + std::to_string(table) + ".step-" + std::to_string(step) + ".rows";
}

StatusOr<int64_t> WriteSparseTableFile(const std::string& path, const SparseTableSnapshot& s,
                                       const SparseTableFileBase* base) {
  const size_t row_floats = static_cast<size_t>(s.dim + s.state_floats);
  std::string header = HeaderBytes(s, base);
  const std::vector<uint64_t> no_tombstones;
  const std::vector<uint64_t>& tombstones = base == nullptr ? no_tombstones : s.expired;
  for (size_t i = 1; i < tombstones.size(); ++i) {
    if (tombstones[i] <= tombstones[i - 1]) return InvalidArgumentError(path + ": tombstones not in increasing order");
  }
  Append(&header, static_cast<uint64_t>(tombstones.size()));
  for (uint64_t id : tombstones) Append(&header, id);
  const long count_offset = static_cast<long>(header.size());
  Append(&header, uint64_t{0});  // the count, written once the rows are
  File f(std::fopen(path.c_str(), "wbx"));
  if (f == nullptr) return UnavailableError("cannot create " + path + ": " + std::strerror(errno));
  RETURN_IF_ERROR(WriteAll(f.get(), header.data(), header.size(), path));
  uint64_t count = 0;
  bool first = true;
  uint64_t previous = 0;
  std::string record;
  RETURN_IF_ERROR(s.for_each_row([&](uint64_t id, const float* row, int64_t last_step) -> Status {
    if (!first && id <= previous) return InvalidArgumentError(path + ": rows not in increasing id order");
    first = false;
    previous = id;
    // `>=`: a row made by a read after the base's cut has the latest step
    // of that moment as its last step (written again: rows updated at that
    // step, which the base holds already).
    if (base != nullptr && last_step < base->latest_step) return OkStatus();
    record.clear();
    Append(&record, id);
    Append(&record, last_step);
    record.append(reinterpret_cast<const char*>(row), row_floats * sizeof(float));
    ++count;
    return WriteAll(f.get(), record.data(), record.size(), path);
  }));
  if (std::fseek(f.get(), count_offset, SEEK_SET) != 0) return UnavailableError("cannot seek in " + path);
  RETURN_IF_ERROR(WriteAll(f.get(), &count, sizeof(count), path));
  if (std::fflush(f.get()) != 0 || fsync(fileno(f.get())) != 0) {
    return UnavailableError("cannot sync " + path + ": " + std::strerror(errno));
  }
  if (std::fclose(f.release()) != 0) return UnavailableError("cannot close " + path + ": " + std::strerror(errno));
  return static_cast<int64_t>(count);
}

SparseTableFileReader::~SparseTableFileReader() {
  if (file_ != nullptr) std::fclose(file_);
}

StatusOr<std::unique_ptr<SparseTableFileReader>> SparseTableFileReader::Open(const std::string& path) {
  std::unique_ptr<SparseTableFileReader> reader(new SparseTableFileReader());
  reader->path_ = path;
  reader->file_ = std::fopen(path.c_str(), "rb");
  if (reader->file_ == nullptr) {
    if (errno == ENOENT) return NotFoundError(path + ": no such file");
    return UnavailableError("cannot open " + path + ": " + std::strerror(errno));
  }
  if (std::fseek(reader->file_, 0, SEEK_END) != 0) return DataLossError(path + ": cannot find its size");
  const long file_size = std::ftell(reader->file_);
  std::rewind(reader->file_);
  RETURN_IF_ERROR(reader->ReadHeader(file_size));
  return reader;
}

Status SparseTableFileReader::ReadHeader(long file_size) {
  std::FILE* f = file_;
  auto bad = [&](const std::string& what) { return DataLossError(path_ + ": " + what); };
  char magic[4];
  uint32_t version = 0;
  if (!ReadExactly(f, magic, 4) || std::memcmp(magic, kMagic, 4) != 0) return bad("not a sparse table file");
  if (!ReadValue(f, &version) || version != kVersion) {
    return bad("version " + std::to_string(version) + ", expected " + std::to_string(kVersion));
  }
  SparseTableFileHeader& h = header_;
  if (!ReadString(f, kMaxNameBytes, file_size, &h.name) || h.name.empty()) return bad("a bad table name");
  int32_t dim = 0, state = 0, type = 0;
  uint32_t kind = 0;
  if (!ReadValue(f, &dim) || !ReadValue(f, &state) || !ReadValue(f, &type) || !ReadValue(f, &h.step) ||
      !ReadValue(f, &h.latest_step) || !ReadValue(f, &kind) || !ReadValue(f, &h.chain_length) ||
      !ReadValue(f, &h.base_step)) {
    return bad("truncated");
  }
  if (dim < 1 || state < 0 || dim + state > kMaxRowFloats || type < 0 || h.step < 0 || h.latest_step < 0) {
    return bad("rows of " + std::to_string(dim) + " values and " + std::to_string(state) + " state floats, step " +
               std::to_string(h.step));
  }
  h.dim = dim;
  h.state_floats = state;
  h.optimizer_type = type;
  if (!ReadString(f, kMaxBaseNameBytes, file_size, &h.base_file) ||
      !ReadString(f, kMaxBaseNameBytes, file_size, &h.base_checkpoint)) {
    return bad("a bad base name");
  }
  h.incremental = kind == kIncremental;
  if (kind > kIncremental || h.chain_length < 1 || (h.chain_length == 1) == h.incremental ||
      h.incremental == h.base_file.empty() || h.base_step < 0) {
    return bad("kind " + std::to_string(kind) + " with a chain of " + std::to_string(h.chain_length) +
               " files and base '" + h.base_file + "'");
  }
  if (!ReadString(f, kMaxAdmissionBytes, file_size, &h.admission)) return bad("a bad admission filter size");
  if (!ReadValue(f, &h.tombstones)) return bad("truncated");
  if (h.tombstones > static_cast<uint64_t>(file_size) / 8) return bad("more tombstones than the file has bytes");
  tombstones_.resize(h.tombstones);
  if (!ReadExactly(f, tombstones_.data(), tombstones_.size() * 8)) return bad("truncated");
  for (size_t i = 1; i < tombstones_.size(); ++i) {
    if (tombstones_[i] <= tombstones_[i - 1]) return bad("tombstones not strictly increasing");
  }
  if (!ReadValue(f, &h.count)) return bad("truncated");
  const size_t row_floats = static_cast<size_t>(dim + state);
  record_bytes_ = 16 + row_floats * sizeof(float);
  const uint64_t rows_bytes = static_cast<uint64_t>(file_size - std::ftell(f));
  if (h.count > rows_bytes / record_bytes_ || h.count * record_bytes_ != rows_bytes) {
    return bad(std::to_string(rows_bytes) + " bytes of rows for " + std::to_string(h.count) + " rows of " +
               std::to_string(record_bytes_));
  }
  block_.resize(kRowsPerBlock * record_bytes_);
  row_buffer_.resize(row_floats);
  return OkStatus();
}

StatusOr<bool> SparseTableFileReader::Next() {
  if (read_ == header_.count) return false;
  if (next_in_block_ == in_block_) {
    in_block_ = static_cast<size_t>(std::min<uint64_t>(kRowsPerBlock, header_.count - read_));
    next_in_block_ = 0;
    if (!ReadExactly(file_, block_.data(), in_block_ * record_bytes_)) return DataLossError(path_ + ": truncated");
  }
  const char* r = block_.data() + next_in_block_ * record_bytes_;
  uint64_t id = 0;
  std::memcpy(&id, r, 8);
  if (read_ > 0 && id <= id_) {
    return DataLossError(path_ + ": ids not strictly increasing at row " + std::to_string(read_));
  }
  id_ = id;
  std::memcpy(&last_step_, r + 8, 8);
  std::memcpy(row_buffer_.data(), r + 16, row_buffer_.size() * sizeof(float));
  row_ = row_buffer_.data();
  ++next_in_block_;
  ++read_;
  return true;
}

StatusOr<SparseTableFileHeader> ReadSparseTableFile(const std::string& path, const SparseRowVisitor& visit) {
  ASSIGN_OR_RETURN(std::unique_ptr<SparseTableFileReader> reader, SparseTableFileReader::Open(path));
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader->Next());
    if (!more) break;
    RETURN_IF_ERROR(visit(reader->id(), reader->row(), reader->last_step()));
  }
  return reader->header();
}

}  // namespace tessera
