#include "server/sparse_row_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <filesystem>

#include "core/random.h"

namespace tessera {
namespace {

// Separates a row's generator from every other use of the seed.
constexpr uint64_t kRowInitDomain = 0x5e0a75;

// The spill database's own info log would only fill its directory.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

// Big-endian, so the keys sort by id.
std::string IdKey(uint64_t id) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(id >> (56 - 8 * i));
  return key;
}

uint64_t KeyId(const rocksdb::Slice& key) {
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | static_cast<unsigned char>(key[i]);
  return id;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return OkStatus();
  if (s.IsCorruption()) return DataLossError(what + ": " + s.ToString());
  if (s.IsNoSpace()) return ResourceExhaustedError(what + ": " + s.ToString());
  return UnavailableError(what + ": " + s.ToString());
}

rocksdb::Options SpillOptions() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.error_if_exists = true;
  options.info_log = std::make_shared<SilentLogger>();
  options.compression = rocksdb::kNoCompression;  // float rows barely compress
  // Most lookups of an id not in memory are of one never seen (a new row):
  // a Bloom filter answers those without reading a block.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

}  // namespace

StatusOr<std::unique_ptr<SparseRowStore>> SparseRowStore::Open(SparseRowStoreOptions options) {
  if (options.dim < 1 || options.dim > 65536) {
    return InvalidArgumentError("sparse table: dim must be in [1, 65536], got " + std::to_string(options.dim));
  }
  if (options.state_floats < 0) {
    return InvalidArgumentError("sparse table: state_floats must be >= 0, got " + std::to_string(options.state_floats));
  }
  const int64_t row_bytes = int64_t{4} * (options.dim + options.state_floats) + kRowOverheadBytes;
  int64_t capacity = 0;
  if (options.memory_budget_bytes < 0) return InvalidArgumentError("sparse table: the memory budget must be >= 0");
  if (options.memory_budget_bytes > 0) {
    capacity = options.memory_budget_bytes / row_bytes;
    if (capacity < 1) {
      return InvalidArgumentError("sparse table: a memory budget of " + std::to_string(options.memory_budget_bytes) +
                                  " bytes holds no row of " + std::to_string(row_bytes) + " bytes");
    }
    if (options.spill_dir.empty()) {
      return InvalidArgumentError("sparse table: a memory budget needs a directory for the rows beyond it");
    }
  }
  if (options.admit_after < 1) return InvalidArgumentError("sparse table: admit_after must be >= 1, got 0");
  if (options.admission_log2_width < 4 || options.admission_log2_width > 30) {
    return InvalidArgumentError("sparse table: admission_log2_width must be in [4, 30], got " +
                                std::to_string(options.admission_log2_width));
  }
  if (options.expire_after_steps < 0) {
    return InvalidArgumentError("sparse table: expire_after_steps must be >= 0, got " +
                                std::to_string(options.expire_after_steps));
  }
  std::unique_ptr<SparseRowStore> store(new SparseRowStore(std::move(options), capacity));
  if (capacity > 0) RETURN_IF_ERROR(store->OpenSpill());
  return store;
}

SparseRowStore::SparseRowStore(SparseRowStoreOptions options, int64_t capacity)
    : options_(std::move(options)),
      row_floats_(options_.dim + options_.state_floats),
      capacity_(capacity),
      zeros_(row_floats_, 0.0f),
      new_row_(row_floats_, 0.0f),
      read_buffer_(row_floats_) {
  if (options_.admit_after > 1) admission_ = std::make_unique<AdmissionFilter>(options_.admission_log2_width);
}

SparseRowStore::~SparseRowStore() = default;

Status SparseRowStore::OpenSpill() {
  const rocksdb::Options options = SpillOptions();
  // Rows left by an earlier run are stale: this run starts from its checkpoint.
  std::error_code error;
  if (std::filesystem::exists(options_.spill_dir, error)) {
    RETURN_IF_ERROR(FromRocks(rocksdb::DestroyDB(options_.spill_dir, options), "cannot clear " + options_.spill_dir));
  }
  rocksdb::DB* db = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, options_.spill_dir, &db), "cannot open " + options_.spill_dir));
  spill_ = std::shared_ptr<rocksdb::DB>(db);
  return OkStatus();
}

void SparseRowStore::InitRow(uint64_t id, float* row) const {
  SplitMix64 rng(MixSeed(options_.seed, MixSeed(kRowInitDomain, options_.table), id));
  const float bound = options_.init_bound;
  for (int i = 0; i < options_.dim; ++i) row[i] = (2.0f * rng.NextFloat() - 1.0f) * bound;
  float* state = row + options_.dim;
  if (options_.init_state) {
    options_.init_state(state);
  } else {
    std::memset(state, 0, sizeof(float) * options_.state_floats);
  }
}

StatusOr<float*> SparseRowStore::Row(uint64_t id, int64_t step) {
  latest_step_ = std::max(latest_step_, step);
  ASSIGN_OR_RETURN(const int64_t slot, SlotOf(id, /*sighting=*/true));
  if (slot < 0) return nullptr;
  changed_[slot] = true;  // the caller may write it
  last_step_[slot] = step;
  return SlotRow(slot);
}

StatusOr<const float*> SparseRowStore::ReadRow(uint64_t id) {
  ASSIGN_OR_RETURN(const int64_t slot, SlotOf(id, /*sighting=*/false));
  if (slot >= 0) return SlotRow(slot);
  if (admission_ != nullptr) return zeros_.data();
  // An id no step has updated reads as the row it will start from, without
  // getting one: only updates make rows, so a pull (an evaluation's of ids
  // training never saw, too) adds nothing to the table or its checkpoints.
  InitRow(id, new_row_.data());
  return new_row_.data();
}

StatusOr<int64_t> SparseRowStore::SlotOf(uint64_t id, bool sighting) {
  if (const auto it = slot_of_.find(id); it != slot_of_.end()) {
    used_since_hand_[it->second] = true;
    return it->second;
  }
  // Read back before taking a slot: an id without a row must not push
  // another row out.
  bool on_disk = false;
  int64_t last_step = latest_step_;
  if (spill_ != nullptr) {
    ASSIGN_OR_RETURN(on_disk, ReadBack(id, &read_buffer_, &last_step));
  }
  if (!on_disk && !sighting) return -1;  // reading makes no row
  if (!on_disk && admission_ != nullptr) {
    if (admission_->See(id) < options_.admit_after) {
      ++counts_.sightings_filtered;
      return -1;
    }
  }
  ASSIGN_OR_RETURN(const int64_t slot, TakeSlot());
  float* row = SlotRow(slot);
  if (on_disk) {
    std::memcpy(row, read_buffer_.data(), sizeof(float) * row_floats_);
    ++counts_.reloads;
  } else {
    InitRow(id, row);
    ++counts_.rows_created;
    ++counts_.rows;
  }
  changed_[slot] = !on_disk;  // a new row is on disk nowhere
  last_step_[slot] = last_step;
  used_since_hand_[slot] = true;
  slot_id_[slot] = id;
  slot_of_.emplace(id, slot);
  return slot;
}

bool SparseRowStore::Expired(int64_t last_step, int64_t now) const {
  return options_.expire_after_steps > 0 && now - last_step > options_.expire_after_steps;
}

StatusOr<int64_t> SparseRowStore::ExpireRows(int64_t step) {
  if (options_.expire_after_steps <= 0) return 0;
  int64_t expired = 0;
  std::vector<uint64_t> gone;
  for (const auto& [id, slot] : slot_of_) {
    if (Expired(last_step_[slot], step)) gone.push_back(id);
  }
  for (const uint64_t id : gone) {
    const int64_t slot = slot_of_[id];
    RETURN_IF_ERROR(DropSlot(slot));
    expired_ids_.push_back(id);
    ++expired;
  }
  if (spill_ != nullptr) {
    // Rows on disk only; a row in memory is newer than its copy there, whose
    // key goes too when that row expires.
    std::unique_ptr<rocksdb::Iterator> it(spill_->NewIterator(rocksdb::ReadOptions()));
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t id = KeyId(it->key());
      if (slot_of_.count(id) > 0) continue;
      int64_t last_step = 0;
      std::memcpy(&last_step, it->value().data() + sizeof(float) * row_floats_, sizeof(last_step));
      if (!Expired(last_step, step)) continue;
      batch.Delete(it->key());
      expired_ids_.push_back(id);
      ++expired;
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "cannot read the rows of " + options_.spill_dir));
    rocksdb::WriteOptions write;
    write.disableWAL = true;
    RETURN_IF_ERROR(FromRocks(spill_->Write(write, &batch), "cannot drop expired rows from " + options_.spill_dir));
  }
  counts_.rows -= expired;
  counts_.rows_expired += expired;
  return expired;
}

std::vector<uint64_t> SparseRowStore::TakeExpiredIds() {
  std::vector<uint64_t> ids = std::move(expired_ids_);
  expired_ids_.clear();
  std::sort(ids.begin(), ids.end());
  return ids;
}

// An expired row's slot made free, and its copy on disk, if any, deleted.
Status SparseRowStore::DropSlot(int64_t slot) {
  const uint64_t id = slot_id_[slot];
  if (spill_ != nullptr) {
    rocksdb::WriteOptions write;
    write.disableWAL = true;
    RETURN_IF_ERROR(FromRocks(spill_->Delete(write, IdKey(id)), "cannot drop a row from " + options_.spill_dir));
  }
  slot_of_.erase(id);
  used_since_hand_[slot] = false;
  changed_[slot] = false;
  free_slots_.push_back(slot);
  return OkStatus();
}

StatusOr<int64_t> SparseRowStore::TakeSlot() {
  if (!free_slots_.empty()) {
    const int64_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  const int64_t slots = static_cast<int64_t>(slot_id_.size());
  if (capacity_ == 0 || slots < capacity_) {
    if (slots % kSlotsPerChunk == 0) {
      const int64_t chunk = capacity_ == 0 ? kSlotsPerChunk : std::min(kSlotsPerChunk, capacity_ - slots);
      arena_.emplace_back(static_cast<size_t>(chunk) * row_floats_);
    }
    slot_id_.push_back(0);
    used_since_hand_.push_back(false);
    changed_.push_back(false);
    last_step_.push_back(0);
    return slots;
  }
  // CLOCK: pass over rows used since the hand last came by, clearing their
  // bits; the first one not used since is the victim.
  while (used_since_hand_[hand_]) {
    used_since_hand_[hand_] = false;
    hand_ = (hand_ + 1) % slots;
  }
  const int64_t victim = hand_;
  hand_ = (hand_ + 1) % slots;
  RETURN_IF_ERROR(Evict(victim));
  return victim;
}

Status SparseRowStore::Evict(int64_t slot) {
  const uint64_t id = slot_id_[slot];
  if (changed_[slot]) {
    rocksdb::WriteOptions write;
    write.disableWAL = true;  // a cache of this run: a crash resumes from a checkpoint
    std::string bytes(reinterpret_cast<const char*>(SlotRow(slot)), sizeof(float) * row_floats_);
    bytes.append(reinterpret_cast<const char*>(&last_step_[slot]), sizeof(int64_t));
    const bool full = options_.test_spill_writes_before_full >= 0 &&
                      counts_.spill_writes >= options_.test_spill_writes_before_full;
    const rocksdb::Status put = full ? rocksdb::Status::NoSpace("test_spill_writes_before_full")
                                     : spill_->Put(write, IdKey(id), bytes);
    RETURN_IF_ERROR(FromRocks(put, "cannot move a row to " + options_.spill_dir));
    ++counts_.spill_writes;
  }
  slot_of_.erase(id);
  ++counts_.evictions;
  return OkStatus();
}

StatusOr<bool> SparseRowStore::ReadBack(uint64_t id, std::vector<float>* row, int64_t* last_step) const {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s = spill_->Get(rocksdb::ReadOptions(), spill_->DefaultColumnFamily(), IdKey(id), &value);
  if (s.IsNotFound()) return false;
  RETURN_IF_ERROR(FromRocks(s, "cannot read a row back from " + options_.spill_dir));
  const size_t floats = sizeof(float) * row_floats_;
  if (value.size() != floats + sizeof(int64_t)) {
    return DataLossError(options_.spill_dir + ": row " + std::to_string(id) + " holds " + std::to_string(value.size()) +
                         " bytes, expected " + std::to_string(floats + sizeof(int64_t)));
  }
  row->resize(row_floats_);
  std::memcpy(row->data(), value.data(), floats);
  std::memcpy(last_step, value.data() + floats, sizeof(int64_t));
  return true;
}

Status SparseRowStore::ForEachRow(const RowVisitor& visit) const {
  for (const auto& [id, slot] : slot_of_) RETURN_IF_ERROR(visit(id, SlotRow(slot), last_step_[slot]));
  if (spill_ == nullptr) return OkStatus();
  std::unique_ptr<rocksdb::Iterator> it(spill_->NewIterator(rocksdb::ReadOptions()));
  std::vector<float> row(row_floats_);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8 || it->value().size() != sizeof(float) * row_floats_ + sizeof(int64_t)) {
      return DataLossError(options_.spill_dir + ": a row of the wrong size");
    }
    const uint64_t id = KeyId(it->key());
    if (slot_of_.count(id) > 0) continue;  // in memory, newer than its copy here
    std::memcpy(row.data(), it->value().data(), sizeof(float) * row_floats_);
    int64_t last_step = 0;
    std::memcpy(&last_step, it->value().data() + sizeof(float) * row_floats_, sizeof(last_step));
    RETURN_IF_ERROR(visit(id, row.data(), last_step));
  }
  return FromRocks(it->status(), "cannot read the rows of " + options_.spill_dir);
}

Status SparseRowStore::PutRow(uint64_t id, const float* row, int64_t last_step) {
  // (A row already moved to disk is not looked for: a checkpoint's rows are
  // read once each, in increasing order within a file, and each id is in
  // one file.)
  if (slot_of_.count(id) > 0) return InvalidArgumentError("row " + std::to_string(id) + " restored twice");
  ASSIGN_OR_RETURN(const int64_t slot, TakeSlot());
  std::memcpy(SlotRow(slot), row, sizeof(float) * row_floats_);
  changed_[slot] = true;
  last_step_[slot] = last_step;
  latest_step_ = std::max(latest_step_, last_step);
  used_since_hand_[slot] = true;
  slot_id_[slot] = id;
  slot_of_.emplace(id, slot);
  ++counts_.rows_created;
  ++counts_.rows_restored;
  ++counts_.rows;
  return OkStatus();
}

Status SparseRowStore::RestoreAdmission(AdmissionFilter filter) {
  if (admission_ == nullptr || filter.log2_width() != admission_->log2_width()) {
    return InvalidArgumentError("the admission filter restored does not fit this table's");
  }
  *admission_ = std::move(filter);
  return OkStatus();
}

std::shared_ptr<const SparseRowSnapshot> SparseRowStore::Snapshot() const {
  std::shared_ptr<SparseRowSnapshot> snapshot(new SparseRowSnapshot());
  snapshot->row_floats_ = row_floats_;
  std::vector<std::pair<uint64_t, int64_t>> in_memory(slot_of_.begin(), slot_of_.end());
  std::sort(in_memory.begin(), in_memory.end());
  snapshot->ids_.reserve(in_memory.size());
  snapshot->last_steps_.reserve(in_memory.size());
  snapshot->rows_.resize(in_memory.size() * static_cast<size_t>(row_floats_));
  for (size_t i = 0; i < in_memory.size(); ++i) {
    const int64_t slot = in_memory[i].second;
    snapshot->ids_.push_back(in_memory[i].first);
    snapshot->last_steps_.push_back(last_step_[slot]);
    std::memcpy(snapshot->rows_.data() + i * row_floats_, SlotRow(slot), sizeof(float) * row_floats_);
  }
  if (spill_ != nullptr) {
    snapshot->spill_ = spill_;
    snapshot->spill_snapshot_ = spill_->GetSnapshot();
    snapshot->spill_dir_ = options_.spill_dir;
  }
  return snapshot;
}

SparseRowSnapshot::~SparseRowSnapshot() {
  if (spill_ != nullptr && spill_snapshot_ != nullptr) spill_->ReleaseSnapshot(spill_snapshot_);
}

Status SparseRowSnapshot::ForEachRow(
    const std::function<Status(uint64_t id, const float* row, int64_t last_step)>& visit) const {
  // A merge of the rows in memory and those on disk, both by id; an id in
  // memory is newer than its copy on disk, which is skipped.
  size_t next = 0;
  auto visit_memory_below = [&](uint64_t bound, bool all) -> Status {
    for (; next < ids_.size() && (all || ids_[next] < bound); ++next) {
      RETURN_IF_ERROR(visit(ids_[next], rows_.data() + next * row_floats_, last_steps_[next]));
    }
    return OkStatus();
  };
  if (spill_ != nullptr) {
    rocksdb::ReadOptions read;
    read.snapshot = spill_snapshot_;
    std::unique_ptr<rocksdb::Iterator> it(spill_->NewIterator(read));
    std::vector<float> row(row_floats_);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 8 || it->value().size() != sizeof(float) * row_floats_ + sizeof(int64_t)) {
        return DataLossError(spill_dir_ + ": a row of the wrong size");
      }
      const uint64_t id = KeyId(it->key());
      RETURN_IF_ERROR(visit_memory_below(id, false));
      if (next < ids_.size() && ids_[next] == id) continue;  // in memory: visited next
      std::memcpy(row.data(), it->value().data(), sizeof(float) * row_floats_);
      int64_t last_step = 0;
      std::memcpy(&last_step, it->value().data() + sizeof(float) * row_floats_, sizeof(last_step));
      RETURN_IF_ERROR(visit(id, row.data(), last_step));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "cannot read the rows of " + spill_dir_));
  }
  return visit_memory_below(0, true);
}

}  // namespace tessera
