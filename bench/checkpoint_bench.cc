// checkpoint_bench: what a checkpoint costs one parameter server — write
// throughput, restore time, and the stall it puts on training — for a model of
// realistic size (default 50M float32 parameters = 200 MB, plus SGD momentum,
// one state float per parameter: 400 MB to store), beside raw-file baselines
// measured by the same program on the same disk.
//
// What it measures, and why:
//
//   1. Checkpoint write. WriteSliceStore (server/slice_store.cc) of every
//      slice of one server — the model sliced with PlanServerSlices and
//      kSliceKeys as the scheduler slices a real job — into a fresh directory.
//      This is the whole background job of Server::MaybeStartWrite: the
//      records encoded into SST files with SstFileWriter (two files on two
//      threads for a part this large), SHA-256 computed as they are written,
//      each file synced, then opened as a database and ingested, closed, and
//      the small files hashed. Baseline ("raw fsync"):
//      the same number of bytes, taken from the same buffers, written with
//      write() into one file in the same directory, then fsync: what a minimal
//      durable writer costs on this disk. MB/s counts record bytes
//      (StoreWriteResult::bytes) in units of 1e6 B/s. Target: >= 0.5x raw.
//      A breakdown follows, measured separately after the timed runs, on one
//      thread: record encoding, one SST file written and synced without
//      SHA-256, and SHA-256 of the records in memory; their sum is what the
//      write would cost on one thread.
//
//   2. Restore. ReadSliceStore (open read-only, iterate, decode records) then
//      KvShard::Restore into a separately built shard, as a restarted server
//      does; beside read() of the raw file into memory. The page cache is
//      dropped before each (sync; echo 3 > /proc/sys/vm/drop_caches) when that
//      works (root); otherwise the reads are warm and the table says so. On a
//      VM the host may still cache the disk image.
//
//   3. Training stall. A server's event loop is blocked by a checkpoint for
//      ArmSnapshot (captures each slice: shares its params and optimizer state
//      buffers) + TakeSnapshot, and the next step pays once more: the snapshot
//      still holds every buffer, so ApplySlice steps out of place, reading the
//      held buffers and writing into spare ones. The stall is arm + take +
//      (step after the snapshot - normal step), reported as a share of a
//      normal step, over the repetitions after the first; the first snapshot
//      is reported apart, as the step after it allocates the spare buffers
//      (page faults), once per server. "Step" here is the server's share of a BSP step with one
//      worker: KvShard::AddPush of a full gradient (one frame per slice), which
//      sums, scales and applies SGD momentum to every parameter — what a
//      fmnist-mlp-like job of this size costs the server per step. A real
//      step also includes the worker's compute and moving 2 x the model over
//      the network, so the share of a real step is smaller. Target: < 10%.
//      Finally the write is run on a background thread (std::async, as
//      MaybeStartWrite does) while steps go on, to show how the two compete
//      for the machine's cores and memory bandwidth.
//
// Outputs (checkpoints and raw files) go under --dir (default a new
// directory under /tmp) and are deleted between repetitions and at the end.
// Every figure is the median of --reps (default 3) repetitions; RocksDB and
// raw repetitions are interleaved, alternating which goes first.
//
// Usage: checkpoint_bench [--quick] [--params_mb=MB] [--reps=N] [--steps=N]
//                         [--dir=PATH] [--json[=PATH]]
//   --params_mb  model parameters in MB (1e6 bytes; 4 bytes per parameter);
//                the optimizer state doubles what is stored. Default 200.
//   --quick      20 MB of parameters: a smoke run of a few seconds.
//   --steps      normal steps timed before the checkpoints (default 5).
//   --json       JSON lines on stdout (the table then goes to stderr);
//   --json=PATH  JSON lines into PATH.
//   --stall_only section 3 without the background write: no write or restore
//                (a few seconds; for comparing changes to the step).
//   --no_spares  do not make the spare buffers ahead of time (as a server
//                does when the job checkpoints): the first snapshot's next
//                step then faults them in.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <glog/logging.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <zmq.hpp>

#include "core/file_util.h"
#include "core/key_range.h"
#include "core/sha256.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "server/slice_store.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kSeed = 7;
constexpr double kMB = 1e6;
constexpr size_t kRawChunk = 4 << 20;  // read() size for the raw read-back

struct BenchOptions {
  double params_mb = 200;
  int reps = 3;
  int steps = 5;
  std::string dir;  // empty: a new directory under /tmp
  bool json = false;
  std::string json_path;  // empty: stdout
  bool stall_only = false;  // section 3 alone, without the background write
  bool spares = true;       // make the spare buffers ahead, as Server does
};

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double Median(std::vector<double> v) {
  CHECK(!v.empty());
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Errno() { return std::strerror(errno); }

// sync + drop the page cache, so the next reads come from the disk. False
// when not allowed (not root, or /proc/sys read-only in a container).
bool DropCaches() {
  sync();
  const int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "3\n", 2) == 2;
  close(fd);
  return ok;
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError("cannot write " + path + ": " + Errno());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return OkStatus();
}

// The raw baseline: the checkpoint's bytes written to one file with write()
// and made durable with fsync. Each slice goes out as its record would: a
// header's worth of bytes, then the parameters and the state straight from
// the snapshot's buffers (no encoding copy), so the byte count equals the
// records' exactly.
Status RawWrite(const std::string& path, const std::vector<SliceSnapshot>& slices, size_t header_bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError("cannot create " + path + ": " + Errno());
  const std::vector<char> header(header_bytes, 0);
  Status s;
  for (const SliceSnapshot& slice : slices) {
    s = WriteAll(fd, header.data(), header.size(), path);
    if (s.ok()) s = WriteAll(fd, slice.params->data(), slice.params->size() * sizeof(float), path);
    if (s.ok()) s = WriteAll(fd, slice.state.data(), slice.state.size() * sizeof(float), path);
    if (!s.ok()) break;
  }
  if (s.ok() && fsync(fd) != 0) s = UnavailableError("cannot fsync " + path + ": " + Errno());
  if (close(fd) != 0 && s.ok()) s = UnavailableError("cannot close " + path + ": " + Errno());
  return s;
}

// The raw read-back: the whole file into one fresh buffer with read().
// Returns the bytes read.
StatusOr<int64_t> RawRead(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open " + path + ": " + Errno());
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return UnavailableError("cannot stat " + path + ": " + Errno());
  }
  std::unique_ptr<char[]> buffer(new char[st.st_size]);
  int64_t total = 0;
  while (total < st.st_size) {
    const ssize_t n = read(fd, buffer.get() + total, std::min<size_t>(kRawChunk, st.st_size - total));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return DataLossError("cannot read " + path + ": " + Errno());
    }
    total += n;
  }
  close(fd);
  return total;
}

// WriteSliceStore's SST file alone, on one thread: SstFileWriter with the
// options of StoreOptions() in server/slice_store.cc (kept in step by hand:
// they are private there) less the SHA-256 checksum generator, the records
// encoded into one reused buffer, put, and Finish (which syncs the file).
// Without the database around it (open, ingest, the small files, close) and
// without SHA-256. Used to attribute the write's time.
Status SstOnlyWrite(const std::string& path, const std::vector<SliceSnapshot>& slices, int per) {
  rocksdb::Options options;
  options.compression = rocksdb::kNoCompression;
  options.paranoid_checks = true;
  options.bytes_per_sync = 8 << 20;
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(options), options, /*column_family=*/nullptr,
                                /*invalidate_page_cache=*/false);
  rocksdb::Status s = writer.Open(path);
  std::string value;
  for (size_t i = 0; s.ok() && i < slices.size(); ++i) {
    value = EncodeSliceRecord(slices[i], per);
    s = writer.Put(SliceKey(slices[i].range.begin), value);
  }
  if (s.ok()) s = writer.Finish();
  if (!s.ok()) return UnavailableError("cannot write " + path + ": " + s.ToString());
  return OkStatus();
}

// A stand-in for a large fmnist-mlp-like model: one hidden layer's weight
// matrix (1024 inputs) holding nearly all keys, and its bias.
std::vector<TensorInfo> MakeModel(uint64_t num_keys) {
  constexpr uint64_t kInputs = 1024;
  std::vector<TensorInfo> tensors;
  const uint64_t rows = num_keys / (kInputs + 1);
  TensorInfo w;
  w.name = "layer0.linear.weight";
  w.shape = {static_cast<int64_t>(rows), static_cast<int64_t>(kInputs)};
  w.offset = 0;
  w.size = rows * kInputs;
  w.init_bound = 1.0f / 32;
  tensors.push_back(w);
  TensorInfo b;
  b.name = "layer0.linear.bias";
  b.shape = {static_cast<int64_t>(num_keys - w.size)};
  b.offset = w.size;
  b.size = num_keys - w.size;
  b.init_bound = 1.0f / 32;
  tensors.push_back(b);
  return tensors;
}

// ---------------------------------------------------------------------------
// Output: a table (stdout, or stderr with --json) and JSON lines.

class Reporter {
 public:
  Reporter(std::FILE* table, std::FILE* json) : table_(table), json_(json) {}

  void Line(const char* format, ...) __attribute__((format(printf, 2, 3))) {
    va_list ap;
    va_start(ap, format);
    std::vfprintf(table_, format, ap);
    va_end(ap);
    std::fputc('\n', table_);
    std::fflush(table_);
  }

  // One table row: name, seconds, MB/s (bytes > 0), and a free note.
  void Row(const std::string& section, const std::string& key, const std::string& label, double seconds,
           int64_t bytes, const std::string& note = "") {
    char rate[32] = "-";
    if (bytes > 0) std::snprintf(rate, sizeof(rate), "%.1f", static_cast<double>(bytes) / kMB / seconds);
    std::fprintf(table_, "  %-46s %10.4f %10s  %s\n", label.c_str(), seconds, rate, note.c_str());
    std::fflush(table_);
    Json(section, key, {{"seconds", seconds}, {"mb_per_s", bytes > 0 ? static_cast<double>(bytes) / kMB / seconds : NAN},
                        {"bytes", static_cast<double>(bytes)}});
  }

  // A JSON line: {"bench":"checkpoint","section":..,"name":.., fields...}.
  void Json(const std::string& section, const std::string& key, const std::vector<std::pair<std::string, double>>& fields) {
    if (json_ == nullptr) return;
    std::fprintf(json_, "{\"bench\":\"checkpoint\",\"section\":\"%s\",\"name\":\"%s\"", section.c_str(), key.c_str());
    for (const auto& [name, value] : fields) {
      if (std::isnan(value)) {
        std::fprintf(json_, ",\"%s\":null", name.c_str());
      } else {
        std::fprintf(json_, ",\"%s\":%.9g", name.c_str(), value);
      }
    }
    std::fprintf(json_, "}\n");
    std::fflush(json_);
  }

  void Blank() {
    std::fputc('\n', table_);
    std::fflush(table_);
  }

  void ColumnHeader() { Line("  %-46s %10s %10s  %s", "", "seconds", "MB/s", ""); }

 private:
  std::FILE* table_;
  std::FILE* json_;
};

// ---------------------------------------------------------------------------
// The shard under test and its gradient.

class Bench {
 public:
  Bench(const BenchOptions& options, Reporter* out) : options_(options), out_(out) {}

  Status Run();

 private:
  Status Setup();
  Status MeasureWrite();
  Status MeasureRestore();
  Status MeasureStall();

  // A full gradient, one frame per owned slice, copied from grad_ (the copy
  // is not timed: a server receives these frames from the network).
  std::vector<zmq::message_t> GradientFrames() const;
  // One step: AddPush of a full gradient at the shard's version. Returns
  // the seconds AddPush took.
  StatusOr<double> Step();

  const BenchOptions& options_;
  Reporter* out_;
  std::string dir_;
  bool own_dir_ = false;
  bool cold_ = false;  // page cache drop works
  std::vector<TensorInfo> tensors_;
  std::vector<KeyRange> slices_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<KvShard> shard_;
  std::vector<float> grad_;
  size_t header_bytes_ = 0;     // per record
  int64_t record_bytes_ = 0;    // all records
  std::string kept_store_;      // the last write's outputs, for the restore
  std::string kept_raw_;
  double write_alone_s_ = 0;    // median WriteSliceStore, for the background comparison
};

std::vector<zmq::message_t> Bench::GradientFrames() const {
  std::vector<zmq::message_t> frames;
  frames.reserve(slices_.size());
  for (const KeyRange& r : slices_) frames.emplace_back(grad_.data() + r.begin, r.size() * sizeof(float));
  return frames;
}

StatusOr<double> Bench::Step() {
  std::vector<zmq::message_t> frames = GradientFrames();
  const int64_t step = shard_->version();
  const Clock::time_point start = Clock::now();
  ASSIGN_OR_RETURN(bool applied, shard_->AddPush(/*rank=*/0, step, /*examples=*/1, slices_, std::move(frames)));
  const double seconds = SecondsSince(start);
  if (!applied) return InternalError("a full push from the only worker did not complete a step");
  return seconds;
}

Status Bench::Setup() {
  const uint64_t num_keys = static_cast<uint64_t>(options_.params_mb * kMB / sizeof(float));
  tensors_ = MakeModel(num_keys);
  slices_ = PlanServerSlices(tensors_, /*servers=*/1)[0];
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::SGD);
  spec.set_learning_rate(0.01f);
  spec.set_momentum(0.9f);
  ASSIGN_OR_RETURN(optimizer_, CreateOptimizer(spec));
  shard_ = std::make_unique<KvShard>(slices_, tensors_, kSeed, optimizer_.get(), proto::BSP, /*workers=*/1);
  grad_.resize(num_keys);
  for (uint64_t i = 0; i < num_keys; ++i) grad_[i] = static_cast<float>(static_cast<int64_t>(i % 2001) - 1000) * 1e-5f;
  // Two steps first, so the momentum state is not all zeros.
  for (int i = 0; i < 2; ++i) RETURN_IF_ERROR(Step().status());
  // A checkpointing server makes these on another thread when it gets its map.
  if (options_.spares) shard_->AdoptSpares(KvShard::MakeSpares(shard_->SpareSizes()));

  const int per = optimizer_->state_per_param();
  const std::vector<SliceSnapshot> snapshot = shard_->Snapshot();
  header_bytes_ = EncodeSliceRecord(snapshot[0], per).size() - slices_[0].size() * sizeof(float) * (1 + per);
  record_bytes_ = 0;
  for (const KeyRange& r : slices_) {
    record_bytes_ += static_cast<int64_t>(header_bytes_ + r.size() * sizeof(float) * (1 + per));
  }

  if (options_.dir.empty()) {
    char templ[] = "/tmp/checkpoint_bench.XXXXXX";
    if (mkdtemp(templ) == nullptr) return UnavailableError("cannot create a directory under /tmp: " + Errno());
    dir_ = templ;
    own_dir_ = true;
  } else {
    dir_ = options_.dir;
    RETURN_IF_ERROR(MakeDirs(dir_));
  }
  cold_ = DropCaches();

  const std::filesystem::space_info space = std::filesystem::space(dir_);
  if (space.available < static_cast<uintmax_t>(3 * record_bytes_)) {
    return UnavailableError(dir_ + " has " + std::to_string(space.available >> 20) + " MiB free, need " +
                            std::to_string(3 * record_bytes_ >> 20));
  }
  uint64_t largest = 0;
  for (const KeyRange& r : slices_) largest = std::max(largest, r.size());
  out_->Line("checkpoint_bench: %.1f MB of float32 parameters (%llu keys) + SGD momentum state (%d float/param)"
             " = %.1f MB of records; one server, %zu slices of <= %llu keys",
             static_cast<double>(num_keys) * sizeof(float) / kMB, static_cast<unsigned long long>(num_keys), per,
             static_cast<double>(record_bytes_) / kMB, slices_.size(), static_cast<unsigned long long>(largest));
  out_->Line("  outputs in %s (free: %.1f GB); MB = 1e6 B; medians of %d repetitions; page cache drop: %s",
             dir_.c_str(), static_cast<double>(space.available) / 1e9, options_.reps,
             cold_ ? "yes (cold reads)" : "NOT possible (reads are warm)");
  out_->Json("setup", "model", {{"params", static_cast<double>(num_keys)},
                                {"params_mb", static_cast<double>(num_keys) * sizeof(float) / kMB},
                                {"state_per_param", static_cast<double>(per)},
                                {"record_bytes", static_cast<double>(record_bytes_)},
                                {"slices", static_cast<double>(slices_.size())},
                                {"cold_reads", cold_ ? 1.0 : 0.0}});
  return OkStatus();
}

// 1. WriteSliceStore vs write() + fsync of the same bytes.
Status Bench::MeasureWrite() {
  const int per = optimizer_->state_per_param();
  const std::vector<SliceSnapshot> snapshot = shard_->Snapshot();
  std::vector<double> store_s, raw_s;
  int64_t store_bytes = 0;
  size_t files = 0;
  for (int rep = 0; rep < options_.reps; ++rep) {
    const std::string store = dir_ + "/store-" + std::to_string(rep);
    const std::string raw = dir_ + "/raw-" + std::to_string(rep);
    // Flush what earlier repetitions left dirty so it does not bill this one.
    sync();
    for (int k = 0; k < 2; ++k) {
      if ((rep + k) % 2 == 0) {
        const Clock::time_point start = Clock::now();
        StatusOr<StoreWriteResult> written = WriteSliceStore(store, snapshot, per);
        if (!written.ok()) return written.status().WithContext("WriteSliceStore");
        store_s.push_back(SecondsSince(start));
        store_bytes = written->bytes;
        files = written->files.size();
      } else {
        const Clock::time_point start = Clock::now();
        RETURN_IF_ERROR(RawWrite(raw, snapshot, header_bytes_));
        raw_s.push_back(SecondsSince(start));
      }
    }
    if (store_bytes != record_bytes_) {
      return InternalError("WriteSliceStore wrote " + std::to_string(store_bytes) + " record bytes, expected " +
                           std::to_string(record_bytes_));
    }
    // Keep the last repetition's outputs for the breakdown and the restore.
    if (rep + 1 < options_.reps) {
      RemoveAll(store);
      RemoveAll(raw);
    } else {
      kept_store_ = store;
      kept_raw_ = raw;
    }
  }
  const double raw_med = Median(raw_s);
  const double store_med = Median(store_s);
  write_alone_s_ = store_med;
  const double ratio = raw_med / store_med;
  std::error_code ec;
  const uintmax_t disk_bytes = [&] {
    uintmax_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(kept_store_, ec)) {
      if (e.is_regular_file()) total += e.file_size();
    }
    return total;
  }();

  out_->Blank();
  out_->Line("[1] checkpoint write: %.1f MB of records (RocksDB: %zu files, %.1f MB on disk)",
             static_cast<double>(record_bytes_) / kMB, files, static_cast<double>(disk_bytes) / kMB);
  out_->ColumnHeader();
  out_->Row("write", "raw_fsync", "raw write() + fsync, one file", raw_med, record_bytes_);
  char note[96];
  std::snprintf(note, sizeof(note), "%.2fx raw (target >= 0.50x) %s", ratio, ratio >= 0.5 ? "MET" : "MISSED");
  out_->Row("write", "write_slice_store", "WriteSliceStore (SST files, SHA-256, ingest)", store_med, record_bytes_,
            note);
  out_->Json("write", "ratio", {{"ratio", ratio}, {"target", 0.5}});

  // Breakdown, measured apart from the timed runs (so each figure is
  // comparable, not a profile of one run): encoding every record, SHA-256 of
  // the records (WriteSliceStore computes it as the SST files are written,
  // with kMaxTables files on as many threads), and the SST file alone on one
  // thread without SHA-256.
  Clock::time_point start = Clock::now();
  std::vector<std::string> records;
  for (const SliceSnapshot& s : snapshot) records.push_back(EncodeSliceRecord(s, per));
  const double encode_s = SecondsSince(start);
  start = Clock::now();
  int64_t encoded = 0;
  for (const std::string& r : records) {
    const std::string hex = Sha256Hex(r.data(), r.size());
    CHECK_EQ(hex.size(), 64u);
    encoded += static_cast<int64_t>(r.size());
  }
  const double hash_s = SecondsSince(start);
  records.clear();
  CHECK_EQ(encoded, record_bytes_);
  std::vector<double> sst_runs;
  for (int rep = 0; rep < options_.reps; ++rep) {
    const std::string sst = dir_ + "/sst-only.sst";
    sync();
    start = Clock::now();
    Status s = SstOnlyWrite(sst, snapshot, per);
    sst_runs.push_back(SecondsSince(start));
    RemoveAll(sst);
    RETURN_IF_ERROR(s.WithContext("SST-only write"));
  }
  const double sst_s = Median(sst_runs);
  out_->Line("  breakdown of WriteSliceStore (each part measured on its own, on one thread, after the timed runs):");
  out_->Row("write_breakdown", "encode", "  (encode records alone: EncodeSliceRecord)", encode_s, record_bytes_);
  out_->Row("write_breakdown", "sst_file", "  SST file alone: encode + SstFileWriter + sync", sst_s, record_bytes_);
  out_->Row("write_breakdown", "sha256", "  SHA-256 of the records (core/sha256)", hash_s, record_bytes_);
  out_->Row("write_breakdown", "sum", "  SST file + SHA-256 (one thread)", sst_s + hash_s, record_bytes_,
            "WriteSliceStore splits this over its threads");
  return OkStatus();
}

// 2. ReadSliceStore + KvShard::Restore vs read() of the raw file.
Status Bench::MeasureRestore() {
  // The target: a shard of the same slices, initialized differently, so the
  // check below proves the restore replaced every value.
  KvShard target(slices_, tensors_, kSeed + 1, optimizer_.get(), proto::BSP, /*workers=*/1);
  const int64_t step = shard_->version();
  std::vector<double> raw_s, read_s, restore_s;
  for (int rep = 0; rep < options_.reps; ++rep) {
    for (int k = 0; k < 2; ++k) {
      DropCaches();
      if ((rep + k) % 2 == 0) {
        const Clock::time_point start = Clock::now();
        StatusOr<std::vector<SliceRecord>> records = ReadSliceStore(kept_store_);
        if (!records.ok()) return records.status().WithContext("ReadSliceStore");
        read_s.push_back(SecondsSince(start));
        const Clock::time_point restore_start = Clock::now();
        RETURN_IF_ERROR(target.Restore(*records, step).WithContext("Restore"));
        restore_s.push_back(SecondsSince(restore_start));
      } else {
        const Clock::time_point start = Clock::now();
        ASSIGN_OR_RETURN(int64_t bytes, RawRead(kept_raw_));
        raw_s.push_back(SecondsSince(start));
        if (bytes != record_bytes_) return InternalError("raw file holds " + std::to_string(bytes) + " bytes");
      }
    }
    if (rep == 0 && (target.params() != shard_->params() || target.version() != step)) {
      return InternalError("the restored shard differs from the one checkpointed");
    }
  }
  const double raw_med = Median(raw_s), read_med = Median(read_s), restore_med = Median(restore_s);
  std::vector<double> total;
  for (size_t i = 0; i < read_s.size(); ++i) total.push_back(read_s[i] + restore_s[i]);
  const double total_med = Median(total);
  out_->Blank();
  out_->Line("[2] restore into a fresh shard (%s reads)", cold_ ? "cold" : "WARM");
  out_->ColumnHeader();
  out_->Row("restore", "raw_read", "raw read() of the file", raw_med, record_bytes_);
  out_->Row("restore", "read_slice_store", "ReadSliceStore", read_med, record_bytes_);
  out_->Row("restore", "kv_shard_restore", "KvShard::Restore", restore_med, record_bytes_);
  char note[64];
  std::snprintf(note, sizeof(note), "%.2fx raw read", raw_med / total_med);
  out_->Row("restore", "total", "ReadSliceStore + Restore", total_med, record_bytes_, note);
  out_->Json("restore", "ratio", {{"ratio", raw_med / total_med}, {"cold", cold_ ? 1.0 : 0.0}});
  RemoveAll(kept_store_);
  RemoveAll(kept_raw_);
  return OkStatus();
}

// 3. The event loop's synchronous share of a checkpoint, and steps beside a
// background write.
Status Bench::MeasureStall() {
  std::vector<double> normal;
  for (int i = 0; i < options_.steps; ++i) {
    ASSIGN_OR_RETURN(double s, Step());
    normal.push_back(s);
  }
  // The shard's first snapshot is timed apart: with --no_spares the step
  // after it allocates the spare buffers it then writes into (page faults);
  // later ones reuse them.
  std::vector<double> arm_s, take_s, cow_s;
  double first_stall = 0;
  for (int rep = -1; rep < options_.reps; ++rep) {
    std::vector<SliceSnapshot> snapshot;
    {
      Clock::time_point start = Clock::now();
      RETURN_IF_ERROR(shard_->ArmSnapshot(shard_->version()));
      arm_s.push_back(SecondsSince(start));
      if (!shard_->SnapshotReady()) return InternalError("a cut at the current version is not ready at once");
      start = Clock::now();
      snapshot = shard_->TakeSnapshot();
      take_s.push_back(SecondsSince(start));
    }
    ASSIGN_OR_RETURN(double s, Step());  // writes out of place: the snapshot holds every buffer
    cow_s.push_back(s);
    snapshot.clear();  // in the server, the writer thread frees it
    ASSIGN_OR_RETURN(double n, Step());  // a normal step again, interleaved with the others
    normal.push_back(n);
    if (rep == -1) {
      first_stall = arm_s.back() + take_s.back() + cow_s.back() - Median(normal);
      arm_s.clear();
      take_s.clear();
      cow_s.clear();
    }
  }
  const double step = Median(normal);
  const double arm = Median(arm_s), take = Median(take_s), cow = Median(cow_s);
  const double extra = cow - step;
  const double stall = arm + take + extra;
  const double share = stall / step;
  const int64_t param_bytes = static_cast<int64_t>(grad_.size() * sizeof(float));
  const int64_t state_bytes = record_bytes_ - param_bytes - static_cast<int64_t>(header_bytes_ * slices_.size());
  out_->Blank();
  out_->Line("[3] training stall per checkpoint (server event loop; step = AddPush of a full gradient, BSP, 1 worker)");
  out_->ColumnHeader();
  out_->Row("stall", "normal_step", "normal step (sum, scale, SGD momentum)", step, param_bytes,
            "MB/s = parameters stepped per second");
  out_->Row("stall", "arm_snapshot", "ArmSnapshot (shares params and state)", arm, state_bytes,
            "MB/s = optimizer state captured");
  out_->Row("stall", "take_snapshot", "TakeSnapshot", take, 0);
  out_->Row("stall", "step_after_snapshot", "step right after the snapshot (out of place)", cow, param_bytes);
  out_->Row("stall", "cow_extra", "  extra over a normal step", extra, 0);
  char note[96];
  std::snprintf(note, sizeof(note), "%.1f%% of a step (target < 10%%) %s", share * 100,
                share < 0.1 ? "MET" : "MISSED");
  out_->Row("stall", "stall", "stall = arm + take + extra", stall, 0, note);
  std::snprintf(note, sizeof(note), "%.1f%% of a step, once per server", first_stall / step * 100);
  out_->Row("stall", "first_stall",
            options_.spares ? "first snapshot's stall (spares made ahead)" : "first snapshot's stall (allocates spares)",
            first_stall, 0, note);
  out_->Json("stall", "share", {{"stall_s", stall},
                                {"step_s", step},
                                {"share", share},
                                {"target", 0.1},
                                {"first_stall_s", first_stall},
                                {"first_share", first_stall / step}});

  if (options_.stall_only) return OkStatus();
  // The write on a background thread (as Server::MaybeStartWrite runs it)
  // while steps go on: both want the cores and the memory bandwidth.
  RETURN_IF_ERROR(shard_->ArmSnapshot(shard_->version()));
  const std::string store = dir_ + "/store-background";
  const int per = optimizer_->state_per_param();
  const Clock::time_point write_start = Clock::now();
  std::future<std::pair<StatusOr<StoreWriteResult>, double>> write =
      std::async(std::launch::async, [store, per, snapshot = shard_->TakeSnapshot(), write_start]() {
        StatusOr<StoreWriteResult> r = WriteSliceStore(store, snapshot, per);
        return std::make_pair(std::move(r), SecondsSince(write_start));
      });
  std::vector<double> during;
  while (write.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    ASSIGN_OR_RETURN(double s, Step());
    during.push_back(s);
  }
  auto [written, write_s] = write.get();
  RemoveAll(store);
  if (!written.ok()) return written.status().WithContext("background WriteSliceStore");
  out_->Line("  with the write on a background thread (std::async, as Server::MaybeStartWrite):");
  out_->Row("background", "write", "  WriteSliceStore beside training", write_s, record_bytes_,
            std::to_string(write_s / write_alone_s_).substr(0, 4) + "x the write alone");
  if (!during.empty()) {
    out_->Row("background", "first_step", "  first step (out of place)", during[0], param_bytes);
  }
  if (during.size() > 1) {
    const std::vector<double> rest(during.begin() + 1, during.end());
    const double mean = [&] {
      double sum = 0;
      for (double s : rest) sum += s;
      return sum / static_cast<double>(rest.size());
    }();
    out_->Row("background", "later_steps", "  later steps, mean of " + std::to_string(rest.size()), mean, param_bytes,
              std::to_string(mean / step).substr(0, 4) + "x a normal step");
  }
  out_->Json("background", "summary", {{"write_s", write_s},
                                       {"write_alone_s", write_alone_s_},
                                       {"steps_during_write", static_cast<double>(during.size())}});
  return OkStatus();
}

Status Bench::Run() {
  Status s = Setup();
  if (s.ok() && !options_.stall_only) s = MeasureWrite();
  if (s.ok() && !options_.stall_only) s = MeasureRestore();
  if (s.ok()) s = MeasureStall();
  if (own_dir_) {
    RemoveAll(dir_);
  } else if (!kept_store_.empty()) {
    RemoveAll(kept_store_);
    RemoveAll(kept_raw_);
  }
  return s;
}

// ---------------------------------------------------------------------------
// Flags (parsed by hand, like kv_bench: gflags would list the library's).

Status ParseArgs(int argc, char** argv, BenchOptions* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value_of = [&](const std::string& name) -> const char* {
      return arg.rfind(name + "=", 0) == 0 ? arg.c_str() + name.size() + 1 : nullptr;
    };
    if (arg == "--stall_only") {
      o->stall_only = true;
    } else if (arg == "--no_spares") {
      o->spares = false;
    } else if (arg == "--quick") {
      o->params_mb = 20;
    } else if (arg == "--json") {
      o->json = true;
    } else if (const char* v = value_of("--json")) {
      o->json = true;
      o->json_path = v;
    } else if (const char* v = value_of("--params_mb")) {
      o->params_mb = std::atof(v);
      if (!(o->params_mb >= 1 && o->params_mb <= 8000)) return InvalidArgumentError("--params_mb must be in 1..8000");
    } else if (const char* v = value_of("--reps")) {
      o->reps = std::atoi(v);
      if (o->reps < 1 || o->reps > 20) return InvalidArgumentError("--reps must be in 1..20");
    } else if (const char* v = value_of("--steps")) {
      o->steps = std::atoi(v);
      if (o->steps < 1 || o->steps > 100) return InvalidArgumentError("--steps must be in 1..100");
    } else if (const char* v = value_of("--dir")) {
      o->dir = v;
      if (o->dir.empty()) return InvalidArgumentError("--dir is empty");
    } else if (arg == "--help" || arg == "-h") {
      return InvalidArgumentError(
          "usage: checkpoint_bench [--quick] [--params_mb=MB] [--reps=N] [--steps=N] [--dir=PATH] [--json[=PATH]] [--stall_only] [--no_spares]");
    } else {
      return InvalidArgumentError("unknown argument '" + arg + "' (try --help)");
    }
  }
  return OkStatus();
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;
  google::InitGoogleLogging(argv[0]);
  tessera::BenchOptions options;
  tessera::Status s = tessera::ParseArgs(argc, argv, &options);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 2;
  }
  std::FILE* json = nullptr;
  std::FILE* table = stdout;
  if (options.json) {
    if (options.json_path.empty()) {
      json = stdout;
      table = stderr;
    } else {
      json = std::fopen(options.json_path.c_str(), "w");
      if (json == nullptr) {
        std::fprintf(stderr, "cannot write %s\n", options.json_path.c_str());
        return 2;
      }
    }
  }
  tessera::Reporter reporter(table, json);
  tessera::Bench bench(options, &reporter);
  s = bench.Run();
  if (json != nullptr && json != stdout) std::fclose(json);
  if (!s.ok()) {
    std::fprintf(stderr, "checkpoint_bench failed: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
