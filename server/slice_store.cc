#include "server/slice_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_checksum.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/file_util.h"
#include "core/sha256.h"

namespace tessera {
namespace {

constexpr char kMagic[4] = {'T', 'S', 'L', '1'};
constexpr char kSha256ChecksumName[] = "TesseraSha256";
// magic, begin, end, version, state_per_param, param count
constexpr size_t kHeaderBytes = 4 + 8 + 8 + 8 + 4 + 8;

// RocksDB's own info log would add (and, on a read-only open, rotate) LOG
// files inside a checkpoint; it goes nowhere instead.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

// SHA-256 of each SST file, computed by RocksDB as it writes the file, so a
// checkpoint's large files need not be read back to be checksummed.
class Sha256FileChecksum : public rocksdb::FileChecksumGenerator {
 public:
  void Update(const char* data, size_t n) override { sha_.Update(data, n); }
  void Finalize() override { digest_ = sha_.HexDigest(); }
  std::string GetChecksum() const override { return digest_; }
  const char* Name() const override { return kSha256ChecksumName; }

 private:
  Sha256 sha_;
  std::string digest_;
};

class Sha256FileChecksumFactory : public rocksdb::FileChecksumGenFactory {
 public:
  std::unique_ptr<rocksdb::FileChecksumGenerator> CreateFileChecksumGenerator(
      const rocksdb::FileChecksumGenContext& /*context*/) override {
    return std::make_unique<Sha256FileChecksum>();
  }
  const char* Name() const override { return "TesseraSha256Factory"; }
};

rocksdb::Options StoreOptions() {
  rocksdb::Options options;
  options.info_log = std::make_shared<SilentLogger>();
  options.file_checksum_gen_factory = std::make_shared<Sha256FileChecksumFactory>();
  options.compression = rocksdb::kNoCompression;  // float32 parameters barely compress
  options.write_buffer_size = 256 << 20;          // one flush for most checkpoints
  options.paranoid_checks = true;
  return options;
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what, StatusCode code = StatusCode::kUnavailable) {
  if (s.ok()) return OkStatus();
  if (s.IsCorruption()) return DataLossError(what + ": " + s.ToString());
  return Status(code, what + ": " + s.ToString());
}

}  // namespace

std::string SliceKey(uint64_t begin) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "slice/%016llx", static_cast<unsigned long long>(begin));
  return buf;
}

std::string EncodeSliceRecord(const SliceSnapshot& slice, int state_per_param) {
  static_assert(std::endian::native == std::endian::little, "records are little-endian");
  std::string v;
  const uint64_t n = slice.range.size();
  CHECK_EQ(slice.params->size(), n);
  CHECK_EQ(slice.state.size(), n * static_cast<uint64_t>(state_per_param));
  v.reserve(kHeaderBytes + n * 4 * (1 + state_per_param));
  v.append(kMagic, 4);
  Put<uint64_t>(&v, slice.range.begin);
  Put<uint64_t>(&v, slice.range.end);
  Put<int64_t>(&v, slice.version);
  Put<uint32_t>(&v, static_cast<uint32_t>(state_per_param));
  Put<uint64_t>(&v, n);
  v.append(reinterpret_cast<const char*>(slice.params->data()), n * sizeof(float));
  v.append(reinterpret_cast<const char*>(slice.state.data()), slice.state.size() * sizeof(float));
  return v;
}

StatusOr<SliceRecord> DecodeSliceRecord(const std::string& key, const std::string& value) {
  if (value.size() < kHeaderBytes) {
    return DataLossError("record " + key + " holds " + std::to_string(value.size()) + " bytes, less than its header");
  }
  if (std::memcmp(value.data(), kMagic, 4) != 0) return DataLossError("record " + key + " has a bad magic");
  const char* p = value.data() + 4;
  SliceRecord r;
  r.range.begin = Get<uint64_t>(p);
  r.range.end = Get<uint64_t>(p + 8);
  r.version = Get<int64_t>(p + 16);
  const uint32_t per = Get<uint32_t>(p + 24);
  const uint64_t n = Get<uint64_t>(p + 28);
  if (r.range.end <= r.range.begin || n != r.range.size() || per > 8) {
    return DataLossError("record " + key + " has an impossible header");
  }
  if (key != SliceKey(r.range.begin)) return DataLossError("record " + key + " holds the slice of another key");
  // Compare counts, not byte sizes: n * 4 * (1 + per) can wrap for a forged n.
  if (n > (value.size() - kHeaderBytes) / (sizeof(float) * (1 + per))) {
    return DataLossError("record " + key + " claims " + std::to_string(n) + " keys but holds " +
                         std::to_string(value.size()) + " bytes");
  }
  const uint64_t expected = kHeaderBytes + n * sizeof(float) * (1 + per);
  if (value.size() != expected) {
    return DataLossError("record " + key + " holds " + std::to_string(value.size()) + " bytes, expected " +
                         std::to_string(expected));
  }
  r.state_per_param = static_cast<int>(per);
  r.params.resize(n);
  std::memcpy(r.params.data(), value.data() + kHeaderBytes, n * sizeof(float));
  r.state.resize(n * per);
  std::memcpy(r.state.data(), value.data() + kHeaderBytes + n * sizeof(float), r.state.size() * sizeof(float));
  return r;
}

StatusOr<StoreWriteResult> WriteSliceStore(const std::string& dir, const std::vector<SliceSnapshot>& slices,
                                           int state_per_param) {
  if (FileExists(dir)) return FailedPreconditionError("checkpoint part " + dir + " already exists");
  rocksdb::Options options = StoreOptions();
  options.create_if_missing = true;
  options.error_if_exists = true;
  // On failure the half-written part goes, so a retry starts clean. Declared
  // before the database, so the database is closed before its files go.
  struct RemoveUnlessKept {
    std::string dir;
    bool keep = false;
    ~RemoveUnlessKept() {
      if (!keep) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    }
  } cleanup{dir};
  rocksdb::DB* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, dir, &raw), "cannot create " + dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions write;
  write.disableWAL = true;  // the flush below makes the data durable
  StoreWriteResult result;
  for (const SliceSnapshot& s : slices) {
    const std::string value = EncodeSliceRecord(s, state_per_param);
    result.bytes += static_cast<int64_t>(value.size());
    RETURN_IF_ERROR(FromRocks(db->Put(write, SliceKey(s.range.begin), value), "cannot write " + dir));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  RETURN_IF_ERROR(FromRocks(db->Flush(flush), "cannot flush " + dir));
  RETURN_IF_ERROR(FromRocks(db->SyncWAL(), "cannot sync " + dir));
  // The SST files' digests, computed as they were written: "000008.sst" -> hex.
  std::map<std::string, std::string> computed;
  {
    std::unique_ptr<rocksdb::FileChecksumList> list(rocksdb::NewFileChecksumList());
    std::vector<uint64_t> numbers;
    std::vector<std::string> checksums, functions;
    if (db->GetLiveFilesChecksumInfo(list.get()).ok() &&
        list->GetAllFileChecksums(&numbers, &checksums, &functions).ok()) {
      for (size_t i = 0; i < numbers.size(); ++i) {
        if (functions[i] != kSha256ChecksumName || checksums[i].size() != 64) continue;
        char name[32];
        std::snprintf(name, sizeof(name), "%06llu.sst", static_cast<unsigned long long>(numbers[i]));
        computed[name] = checksums[i];
      }
    }
  }
  RETURN_IF_ERROR(FromRocks(db->Close(), "cannot close " + dir));
  db.reset();

  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "LOCK" || name.rfind("LOG", 0) == 0) continue;  // not part of the data
    names.push_back(name);
  }
  if (ec) return UnavailableError("cannot list " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    uint64_t size = 0;
    std::string digest;
    if (auto it = computed.find(name); it != computed.end()) {
      std::error_code ec;
      size = std::filesystem::file_size(dir + "/" + name, ec);
      if (ec) return UnavailableError("cannot stat " + dir + "/" + name + ": " + ec.message());
      digest = it->second;
    } else {
      ASSIGN_OR_RETURN(digest, Sha256OfFile(dir + "/" + name, &size));  // the small files
    }
    proto::FileChecksum f;
    f.set_name(name);
    f.set_size(size);
    f.set_sha256(digest);
    result.files.push_back(f);
  }
  RETURN_IF_ERROR(SyncDirectory(dir));
  cleanup.keep = true;
  return result;
}

StatusOr<std::vector<SliceRecord>> ReadSliceStore(const std::string& dir) {
  if (!FileExists(dir + "/CURRENT")) return NotFoundError("no checkpoint database in " + dir);
  rocksdb::DB* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::OpenForReadOnly(StoreOptions(), dir, &raw), "cannot open " + dir,
                            StatusCode::kDataLoss));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ReadOptions read;
  read.verify_checksums = true;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  std::vector<SliceRecord> records;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto record = DecodeSliceRecord(it->key().ToString(), it->value().ToString());
    if (!record.ok()) return record.status().WithContext(dir);
    records.push_back(std::move(record).value());
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "cannot read " + dir, StatusCode::kDataLoss));
  return records;
}

}  // namespace tessera
