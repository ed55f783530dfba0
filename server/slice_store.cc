#include "server/slice_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_checksum.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>

#include "core/file_util.h"
#include "core/sha256.h"

namespace tessera {
namespace {

constexpr char kMagic[4] = {'T', 'S', 'L', '1'};
constexpr char kSha256ChecksumName[] = "TesseraSha256";
// magic, begin, end, version, state_per_param, param count
constexpr size_t kHeaderBytes = 4 + 8 + 8 + 8 + 4 + 8;
// A large part is written as this many SST files at once, one thread each:
// SHA-256 and the block checksums are CPU work that one core does at about
// the disk's speed. Each file holds at least kMinTableBytes.
constexpr size_t kMaxTables = 2;
constexpr uint64_t kMinTableBytes = 32 << 20;
// What a part's database holds besides its records (MANIFEST, OPTIONS, CURRENT, a log): well under this.
constexpr uint64_t kStoreOverheadBytes = 1 << 20;

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
  options.paranoid_checks = true;
  // Start writing back every few MB as the SST file grows, so the disk works
  // while the next records are encoded and hashed and the final sync has
  // little left to do.
  options.bytes_per_sync = 8 << 20;
  // No preallocation: RocksDB would reserve tens of MB per SST file (its
  // target file size), so a part needed far more free space while written
  // than it keeps, and failed on a nearly full disk that holds it easily.
  options.allow_fallocate = false;
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
  if (s.IsNoSpace()) return ResourceExhaustedError(what + ": " + s.ToString());
  return Status(code, what + ": " + s.ToString());
}

}  // namespace

std::string SliceKey(uint64_t begin) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "slice/%016llx", static_cast<unsigned long long>(begin));
  return buf;
}

namespace {

// Encodes `slice` into *v, reusing its capacity (one buffer serves every
// record of a write, so a write does not allocate and fault in 400 MB of
// fresh pages).
void EncodeSliceRecordInto(const SliceSnapshot& slice, int state_per_param, std::string* v) {
  static_assert(std::endian::native == std::endian::little, "records are little-endian");
  const uint64_t n = slice.range.size();
  CHECK_EQ(slice.params->size(), n);
  CHECK_EQ(slice.state.size(), n * static_cast<uint64_t>(state_per_param));
  v->clear();
  v->reserve(kHeaderBytes + n * 4 * (1 + state_per_param));
  v->append(kMagic, 4);
  Put<uint64_t>(v, slice.range.begin);
  Put<uint64_t>(v, slice.range.end);
  Put<int64_t>(v, slice.version);
  Put<uint32_t>(v, static_cast<uint32_t>(state_per_param));
  Put<uint64_t>(v, n);
  v->append(reinterpret_cast<const char*>(slice.params->data()), n * sizeof(float));
  v->append(reinterpret_cast<const char*>(slice.state.data()), slice.state.size() * sizeof(float));
}

}  // namespace

std::string EncodeSliceRecord(const SliceSnapshot& slice, int state_per_param) {
  std::string v;
  EncodeSliceRecordInto(slice, state_per_param, &v);
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

namespace {

// Writes the records of `slices` (in key order) into one SST file at `path`
// with SstFileWriter: straight into the file, no memtable and no flush.
// Finish syncs the file; the SHA-256 is computed as the bytes go out
// (StoreOptions' checksum generator) and returned in the info.
StatusOr<rocksdb::ExternalSstFileInfo> WriteTable(const std::string& path, const rocksdb::Options& options,
                                                  const std::vector<const SliceSnapshot*>& slices, int state_per_param,
                                                  int64_t* bytes) {
  // Keep the pages cached: a restore or inspect soon after reads them.
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(options), options, /*column_family=*/nullptr,
                                /*invalidate_page_cache=*/false);
  RETURN_IF_ERROR(FromRocks(writer.Open(path), "cannot create " + path));
  std::string value;
  for (const SliceSnapshot* s : slices) {
    EncodeSliceRecordInto(*s, state_per_param, &value);
    *bytes += static_cast<int64_t>(value.size());
    RETURN_IF_ERROR(FromRocks(writer.Put(SliceKey(s->range.begin), value), "cannot write " + path));
  }
  rocksdb::ExternalSstFileInfo info;
  RETURN_IF_ERROR(FromRocks(writer.Finish(&info), "cannot finish " + path));
  return info;
}

// `sorted` cut into at most kMaxTables runs of consecutive slices with about
// the same bytes each, one per SST file (consecutive, so the files' key
// ranges do not overlap).
std::vector<std::vector<const SliceSnapshot*>> SplitIntoTables(const std::vector<const SliceSnapshot*>& sorted) {
  uint64_t total = 0;
  for (const SliceSnapshot* s : sorted) total += (s->params->size() + s->state.size()) * sizeof(float);
  if (total == 0) return {sorted};
  const size_t tables = std::clamp<size_t>(total / kMinTableBytes, 1, std::min(kMaxTables, sorted.size()));
  std::vector<std::vector<const SliceSnapshot*>> out(tables);
  uint64_t before = 0;
  for (const SliceSnapshot* s : sorted) {
    out[std::min<size_t>(before * tables / total, tables - 1)].push_back(s);
    before += (s->params->size() + s->state.size()) * sizeof(float);
  }
  std::erase_if(out, [](const auto& run) { return run.empty(); });
  return out;
}

// Writes one SST file per run of `runs` into `dir`, all at once (the first
// on this thread). Adds the record bytes to *bytes.
StatusOr<std::vector<rocksdb::ExternalSstFileInfo>> WriteTables(
    const std::string& dir, const rocksdb::Options& options,
    const std::vector<std::vector<const SliceSnapshot*>>& runs, int state_per_param, int64_t* bytes) {
  std::vector<int64_t> run_bytes(runs.size(), 0);
  auto write = [&](size_t i) {
    return WriteTable(dir + "/records-" + std::to_string(i) + ".sst.tmp", options, runs[i], state_per_param,
                      &run_bytes[i]);
  };
  std::vector<std::future<StatusOr<rocksdb::ExternalSstFileInfo>>> others;
  for (size_t i = 1; i < runs.size(); ++i) others.push_back(std::async(std::launch::async, write, i));
  std::vector<StatusOr<rocksdb::ExternalSstFileInfo>> written;
  written.push_back(write(0));
  for (auto& f : others) written.push_back(f.get());  // every thread joined before returning
  std::vector<rocksdb::ExternalSstFileInfo> tables;
  for (size_t i = 0; i < written.size(); ++i) {
    if (!written[i].ok()) return written[i].status();
    tables.push_back(std::move(written[i]).value());
    *bytes += run_bytes[i];
  }
  return tables;
}

// Moves the SST files `tables` into the open database (hard links; the files
// are not rewritten: write_global_seqno off), taking the SHA-256s computed
// while they were written rather than reading them again.
Status IngestTables(rocksdb::DB* db, const std::vector<rocksdb::ExternalSstFileInfo>& tables, const std::string& dir) {
  rocksdb::IngestExternalFileArg arg;
  arg.column_family = db->DefaultColumnFamily();
  for (const rocksdb::ExternalSstFileInfo& t : tables) {
    arg.external_files.push_back(t.file_path);
    arg.files_checksums.push_back(t.file_checksum);
    arg.files_checksum_func_names.push_back(t.file_checksum_func_name);
  }
  arg.options.move_files = true;
  arg.options.write_global_seqno = false;
  arg.options.verify_file_checksum = false;
  return FromRocks(db->IngestExternalFiles({arg}), "cannot add the records to " + dir);
}

// ResourceExhausted, before anything is written, when the disk under `dir`
// lacks the room the part takes: its records plus RocksDB's own small files
// (kStoreOverheadBytes). The records are written once, straight into their
// SST files, so that is all a part needs while it is written.
Status CheckFreeSpace(const std::string& dir, const std::vector<const SliceSnapshot*>& slices) {
  uint64_t need = kStoreOverheadBytes;
  for (const SliceSnapshot* s : slices) need += (s->params->size() + s->state.size()) * sizeof(float) + kHeaderBytes;
  std::error_code ec;
  const std::filesystem::space_info space =
      std::filesystem::space(std::filesystem::path(dir).parent_path(), ec);
  if (ec || space.available >= need) return OkStatus();  // unknown: the write itself will tell
  return ResourceExhaustedError("checkpoint part " + dir + " needs about " + std::to_string(need >> 20) +
                                " MiB, and " + std::to_string(space.available >> 20) + " MiB are free");
}

}  // namespace

StatusOr<StoreWriteResult> WriteSliceStore(const std::string& dir, const std::vector<SliceSnapshot>& slices,
                                           int state_per_param) {
  if (FileExists(dir)) return FailedPreconditionError("checkpoint part " + dir + " already exists");
  std::vector<const SliceSnapshot*> sorted;  // SST keys must come in order
  sorted.reserve(slices.size());
  for (const SliceSnapshot& s : slices) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(),
            [](const SliceSnapshot* a, const SliceSnapshot* b) { return a->range.begin < b->range.begin; });
  RETURN_IF_ERROR(CheckFreeSpace(dir, sorted));
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
  StoreWriteResult result;
  // The records go into SST files written and synced beside the database
  // and then moved in (the memtable path would copy every record twice more
  // and write it from a flush). No WAL is involved: the files are durable
  // before they are ingested, and ingestion syncs the MANIFEST.
  if (!sorted.empty()) {
    ASSIGN_OR_RETURN(std::vector<rocksdb::ExternalSstFileInfo> tables,
                     WriteTables(dir, options, SplitIntoTables(sorted), state_per_param, &result.bytes));
    RETURN_IF_ERROR(IngestTables(db.get(), tables, dir));
  }
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
