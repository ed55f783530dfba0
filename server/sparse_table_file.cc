#include "server/sparse_table_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace tessera {

namespace {

constexpr char kMagic[4] = {'T', 'S', 'P', 'T'};
constexpr uint32_t kVersion = 1;
// Bounds on the header's fields, checked before anything is allocated.
constexpr uint32_t kMaxNameBytes = 64;
constexpr int kMaxRowFloats = 1024 * 3;        // dim <= 1024, at most 2 floats of state per value
constexpr uint32_t kMaxAdmissionBytes = 1u << 31;
constexpr size_t kRowsPerBlock = 4096;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

template <typename T>
void Append(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
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

}  // namespace

std::string SparseTableFileName(int table) { return "sparse-" + std::to_string(table) + ".rows"; }

StatusOr<int64_t> WriteSparseTableFile(const std::string& path, const SparseTableSnapshot& s) {
  const size_t row_floats = static_cast<size_t>(s.dim + s.state_floats);
  std::string header(kMagic, sizeof(kMagic));
  Append(&header, kVersion);
  Append(&header, static_cast<uint32_t>(s.name.size()));
  header += s.name;
  Append(&header, static_cast<int32_t>(s.dim));
  Append(&header, static_cast<int32_t>(s.state_floats));
  Append(&header, static_cast<int32_t>(s.optimizer_type));
  Append(&header, static_cast<int64_t>(s.step));
  Append(&header, static_cast<uint32_t>(s.admission.size()));
  header += s.admission;
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

StatusOr<SparseTableFileHeader> ReadSparseTableFile(const std::string& path, const SparseRowVisitor& visit) {
  File f(std::fopen(path.c_str(), "rb"));
  if (f == nullptr) {
    if (errno == ENOENT) return NotFoundError(path + ": no such file");
    return UnavailableError("cannot open " + path + ": " + std::strerror(errno));
  }
  auto bad = [&](const std::string& what) { return DataLossError(path + ": " + what); };
  if (std::fseek(f.get(), 0, SEEK_END) != 0) return bad("cannot find its size");
  const long file_size = std::ftell(f.get());
  std::rewind(f.get());

  char magic[4];
  uint32_t version = 0, name_bytes = 0, admission_bytes = 0;
  if (!ReadExactly(f.get(), magic, 4) || std::memcmp(magic, kMagic, 4) != 0) return bad("not a sparse table file");
  if (!ReadValue(f.get(), &version) || version != kVersion) return bad("version " + std::to_string(version) + ", expected 1");
  SparseTableFileHeader h;
  if (!ReadValue(f.get(), &name_bytes) || name_bytes == 0 || name_bytes > kMaxNameBytes) return bad("a bad table name");
  h.name.resize(name_bytes);
  if (!ReadExactly(f.get(), h.name.data(), name_bytes)) return bad("truncated");
  int32_t dim = 0, state = 0, type = 0;
  if (!ReadValue(f.get(), &dim) || !ReadValue(f.get(), &state) || !ReadValue(f.get(), &type) ||
      !ReadValue(f.get(), &h.step)) {
    return bad("truncated");
  }
  if (dim < 1 || state < 0 || dim + state > kMaxRowFloats || type < 0 || h.step < 0) {
    return bad("rows of " + std::to_string(dim) + " values and " + std::to_string(state) + " state floats, step " +
               std::to_string(h.step));
  }
  h.dim = dim;
  h.state_floats = state;
  h.optimizer_type = type;
  if (!ReadValue(f.get(), &admission_bytes) || admission_bytes > kMaxAdmissionBytes ||
      static_cast<long>(admission_bytes) > file_size) {
    return bad("a bad admission filter size");
  }
  h.admission.resize(admission_bytes);
  if (!ReadExactly(f.get(), h.admission.data(), admission_bytes) || !ReadValue(f.get(), &h.count)) {
    return bad("truncated");
  }
  const size_t row_floats = static_cast<size_t>(dim + state);
  const uint64_t record_bytes = 16 + row_floats * sizeof(float);
  const uint64_t rows_bytes = static_cast<uint64_t>(file_size - std::ftell(f.get()));
  if (h.count > rows_bytes / record_bytes || h.count * record_bytes != rows_bytes) {
    return bad(std::to_string(rows_bytes) + " bytes of rows for " + std::to_string(h.count) + " rows of " +
               std::to_string(record_bytes));
  }
  std::vector<char> block(kRowsPerBlock * record_bytes);
  std::vector<float> row(row_floats);
  bool first = true;
  uint64_t previous = 0;
  for (uint64_t done = 0; done < h.count;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kRowsPerBlock, h.count - done));
    if (!ReadExactly(f.get(), block.data(), n * record_bytes)) return bad("truncated");
    for (size_t i = 0; i < n; ++i) {
      const char* r = block.data() + i * record_bytes;
      uint64_t id = 0;
      int64_t last_step = 0;
      std::memcpy(&id, r, 8);
      std::memcpy(&last_step, r + 8, 8);
      if (!first && id <= previous) return bad("ids not strictly increasing at row " + std::to_string(done + i));
      first = false;
      previous = id;
      std::memcpy(row.data(), r + 16, row_floats * sizeof(float));
      RETURN_IF_ERROR(visit(id, row.data(), last_step));
    }
    done += n;
  }
  return h;
}

StatusOr<SparseTableFileHeader> ReadCheckpointSparseTable(const std::string& part_dir, int table,
                                                          const SparseRowVisitor& visit) {
  return ReadSparseTableFile(part_dir + "/" + SparseTableFileName(table), visit);
}

}  // namespace tessera
