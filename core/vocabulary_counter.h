// Counts a vocabulary column's values over the training records, exactly, in
// bounded memory, and makes its vocabulary (docs/FORMATS.md, "Categorical
// columns", is the contract): at most `max_distinct_in_memory` values are
// counted in a hash map; past that they are sorted by value and spilled as
// a run to a temp file (core/vocabulary_run.h) and the map starts afresh.
// Build merges the runs with the map by value (summing the counts of a
// value seen in several), and keeps the max_size most frequent in a bounded
// heap, so that memory holds the map, one read buffer per run and the
// result. The runs' directory goes with the counter.
#ifndef TESSERA_CORE_VOCABULARY_COUNTER_H_
#define TESSERA_CORE_VOCABULARY_COUNTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/categorical.h"
#include "core/file_system.h"
#include "core/file_util.h"
#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

// Distinct values counted in memory before they are spilled: about 100 MB
// of short values. A table's vocabulary columns share it (table_data.cc).
inline constexpr int64_t kVocabularyValuesInMemory = int64_t{1} << 20;

struct VocabularyCounterOptions {
  // Distinct values held in memory before they go to a run. Default
  // kVocabularyValuesInMemory; >= 1 (tests make it tiny).
  int64_t max_distinct_in_memory = kVocabularyValuesInMemory;
  // Where the runs' temp directory is made. Default "": the system's temp
  // directory (TMPDIR, else /tmp).
  std::string spill_parent;
  // Writes the runs. Default the local file system; must outlive the counter.
  FileSystem* fs = LocalFileSystem();
};

// Not thread-safe. Movable, not copyable; destroying it removes its runs.
class VocabularyCounter {
 public:
  explicit VocabularyCounter(VocabularyCounterOptions options = {});
  VocabularyCounter(VocabularyCounter&&) = default;
  VocabularyCounter& operator=(VocabularyCounter&&) = default;

  // Counts one field; an empty one (missing) is not a value. A spill that
  // fails returns Unavailable (ResourceExhausted for a full disk) naming the
  // file; the counter is then of no further use.
  [[nodiscard]] Status Add(std::string_view field);

  // Runs spilled so far.
  int runs() const { return runs_; }
  // The runs' directory ("" before the first spill).
  std::string spill_dir() const { return spill_dir_ ? spill_dir_->path() : ""; }

  // The values counted at least spec.min_count times, by descending count,
  // ties in bytewise order, cut to spec.max_size when that is > 0.
  // InvalidArgument naming `column` when more than kMaxCategoricalIds - 1
  // are left; DataLoss when a run does not read back.
  StatusOr<std::vector<std::string>> Build(const proto::VocabularySpec& spec, const std::string& column) const;

 private:
  // Writes the map's entries, sorted by value, as the next run, and clears it.
  Status Spill();

  VocabularyCounterOptions options_;
  StringMap counts_;
  std::unique_ptr<TempDirectory> spill_dir_;  // made at the first spill
  int runs_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_CORE_VOCABULARY_COUNTER_H_
