// SliceStore: a server's checkpoint part as a RocksDB database, one record
// per slice (parameters, optimizer state, version). The record format is in
// docs/FORMATS.md. Each checkpoint writes a fresh database; reading opens it
// read-only, so a checkpoint's files never change after they are written.
//
// Functions only; thread-safe for distinct directories.
#ifndef TESSERA_SERVER_SLICE_STORE_H_
#define TESSERA_SERVER_SLICE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"
#include "proto/wire.pb.h"

namespace tessera {

// Floats shared read-only, without a copy: a snapshot's optimizer state,
// which the shard leaves untouched (its next step writes into another
// buffer) while a snapshot holds it. Reads like the const std::vector<float>
// it holds, and converts from one, so code that built a snapshot's state as a
// vector still does.
class SharedFloats {
 public:
  SharedFloats() : SharedFloats(std::vector<float>()) {}
  SharedFloats(std::vector<float> values)  // NOLINT(google-explicit-constructor): stands in for a vector
      : values_(std::make_shared<const std::vector<float>>(std::move(values))) {}
  explicit SharedFloats(std::shared_ptr<const std::vector<float>> values) : values_(std::move(values)) {}

  operator const std::vector<float>&() const { return *values_; }  // NOLINT(google-explicit-constructor)
  const std::vector<float>& vector() const { return *values_; }
  const float* data() const { return values_->data(); }
  size_t size() const { return values_->size(); }
  bool empty() const { return values_->empty(); }
  const float& operator[](size_t i) const { return (*values_)[i]; }
  std::vector<float>::const_iterator begin() const { return values_->begin(); }
  std::vector<float>::const_iterator end() const { return values_->end(); }

 private:
  std::shared_ptr<const std::vector<float>> values_;  // never null
};

// One slice to write. `params` and `state` are shared with the server, not
// copied: its next step writes into other buffers while a snapshot holds
// these, so they keep the values of the cut while the write runs.
struct SliceSnapshot {
  KeyRange range;
  int64_t version = 0;
  std::shared_ptr<const std::vector<float>> params;
  SharedFloats state;  // state_per_param blocks of range.size() floats
};

// One slice read back.
struct SliceRecord {
  KeyRange range;
  int64_t version = 0;
  int state_per_param = 0;
  std::vector<float> params;
  std::vector<float> state;
};

struct StoreWriteResult {
  std::vector<proto::FileChecksum> files;  // names relative to dir
  int64_t bytes = 0;
};

// Writes `slices` into a new RocksDB at `dir` (which must not exist), flushes
// and syncs it, closes it, and returns its files with SHA-256 checksums.
// Unavailable on any I/O error (disk full included).
StatusOr<StoreWriteResult> WriteSliceStore(const std::string& dir, const std::vector<SliceSnapshot>& slices,
                                           int state_per_param);

// Reads every record of the RocksDB at `dir`. NotFound when there is none;
// DataLoss naming the directory for a corrupt database or record.
StatusOr<std::vector<SliceRecord>> ReadSliceStore(const std::string& dir);

// The record encoding, exposed for tests. DecodeSliceRecord validates every
// length and field before reading; DataLoss on any mismatch.
std::string EncodeSliceRecord(const SliceSnapshot& slice, int state_per_param);
StatusOr<SliceRecord> DecodeSliceRecord(const std::string& key, const std::string& value);
std::string SliceKey(uint64_t begin);

}  // namespace tessera

#endif  // TESSERA_SERVER_SLICE_STORE_H_
