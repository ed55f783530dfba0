#include "core/vocabulary_counter.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/vocabulary_run.h"

namespace tessera {
namespace {

std::string RunPath(const std::string& dir, int run) { return dir + "/run-" + std::to_string(run); }

// The map's entries sorted by value (views into the map).
std::vector<VocabularyEntry> SortedEntries(const StringMap& counts) {
  std::vector<VocabularyEntry> entries;
  entries.reserve(counts.size());
  for (const auto& [value, count] : counts) entries.push_back({value, count});
  std::sort(entries.begin(), entries.end(),
            [](const VocabularyEntry& a, const VocabularyEntry& b) { return a.value < b.value; });
  return entries;
}

// One stream of (value, count) in increasing value order: the map's sorted
// entries, or a run read back.
class SortedSource {
 public:
  virtual ~SortedSource() = default;
  // Moves to the next entry: true when there is one.
  virtual StatusOr<bool> Next() = 0;
  virtual std::string_view value() const = 0;
  virtual int64_t count() const = 0;
};

class MemorySource : public SortedSource {
 public:
  explicit MemorySource(std::vector<VocabularyEntry> entries) : entries_(std::move(entries)) {}
  StatusOr<bool> Next() override { return ++next_ <= entries_.size(); }
  std::string_view value() const override { return entries_[next_ - 1].value; }
  int64_t count() const override { return entries_[next_ - 1].count; }

 private:
  std::vector<VocabularyEntry> entries_;
  size_t next_ = 0;  // one past the current entry
};

class RunSource : public SortedSource {
 public:
  explicit RunSource(std::unique_ptr<VocabularyRunReader> reader) : reader_(std::move(reader)) {}
  StatusOr<bool> Next() override { return reader_->Next(); }
  std::string_view value() const override { return reader_->value(); }
  int64_t count() const override { return reader_->count(); }

 private:
  std::unique_ptr<VocabularyRunReader> reader_;
};

// Every source's entries in one stream of increasing values, the counts of
// a value found in several sources summed (a k-way merge on a heap).
class MergedCounts {
 public:
  // Takes each source's first entry.
  static StatusOr<MergedCounts> Start(std::vector<std::unique_ptr<SortedSource>> sources) {
    MergedCounts merged;
    merged.sources_ = std::move(sources);
    for (size_t s = 0; s < merged.sources_.size(); ++s) RETURN_IF_ERROR(merged.Advance(s));
    return merged;
  }

  // Moves to the next value: true when there is one (value(), count()).
  // DataLoss when a run breaks its layout or the counts overflow.
  StatusOr<bool> Next() {
    if (heap_.empty()) return false;
    value_ = std::string(sources_[heap_.front()]->value());
    count_ = 0;
    while (!heap_.empty() && sources_[heap_.front()]->value() == value_) {
      std::pop_heap(heap_.begin(), heap_.end(), SmallestValueFirst{this});
      const size_t s = heap_.back();
      heap_.pop_back();
      if (__builtin_add_overflow(count_, sources_[s]->count(), &count_)) {
        return DataLossError("the vocabulary counts of '" + value_ + "' overflow");
      }
      RETURN_IF_ERROR(Advance(s));
    }
    return true;
  }
  const std::string& value() const { return value_; }
  int64_t count() const { return count_; }

 private:
  // Orders the heap so that its front is the source at the smallest value.
  struct SmallestValueFirst {
    const MergedCounts* merged;
    bool operator()(size_t a, size_t b) const { return merged->sources_[a]->value() > merged->sources_[b]->value(); }
  };

  // Moves source `s` on and puts it back on the heap unless it has ended.
  Status Advance(size_t s) {
    ASSIGN_OR_RETURN(const bool more, sources_[s]->Next());
    if (!more) return OkStatus();
    heap_.push_back(s);
    std::push_heap(heap_.begin(), heap_.end(), SmallestValueFirst{this});
    return OkStatus();
  }

  std::vector<std::unique_ptr<SortedSource>> sources_;
  std::vector<size_t> heap_;  // sources with an entry left
  std::string value_;
  int64_t count_ = 0;
};

struct CountedValue {
  std::string value;
  int64_t count = 0;
};

// The vocabulary's order: descending count, ties in bytewise order.
bool ComesFirst(const CountedValue& a, const CountedValue& b) {
  return a.count != b.count ? a.count > b.count : a.value < b.value;
}

// The `max_size` values that come first of those offered, in a bounded heap
// whose front is the last of them (the one a better value pushes out).
class TopValues {
 public:
  explicit TopValues(size_t max_size) : max_size_(max_size) {}

  void Offer(const std::string& value, int64_t count) {
    if (heap_.size() < max_size_) {
      heap_.push_back({value, count});
      std::push_heap(heap_.begin(), heap_.end(), ComesFirst);
      return;
    }
    const CountedValue offered{value, count};
    if (!ComesFirst(offered, heap_.front())) return;
    std::pop_heap(heap_.begin(), heap_.end(), ComesFirst);
    heap_.back() = offered;
    std::push_heap(heap_.begin(), heap_.end(), ComesFirst);
  }

  // The values kept, first first.
  std::vector<CountedValue> TakeSorted() {
    std::sort_heap(heap_.begin(), heap_.end(), ComesFirst);
    return std::move(heap_);
  }

 private:
  const size_t max_size_;
  std::vector<CountedValue> heap_;
};

}  // namespace

VocabularyCounter::VocabularyCounter(VocabularyCounterOptions options) : options_(std::move(options)) {}

Status VocabularyCounter::Add(std::string_view field) {
  if (field.empty()) return OkStatus();
  auto it = counts_.find(field);
  if (it != counts_.end()) {
    ++it->second;
    return OkStatus();
  }
  counts_.emplace(std::string(field), 1);
  if (static_cast<int64_t>(counts_.size()) > options_.max_distinct_in_memory) return Spill();
  return OkStatus();
}

Status VocabularyCounter::Spill() {
  if (spill_dir_ == nullptr) {
    ASSIGN_OR_RETURN(spill_dir_, TempDirectory::Make(options_.spill_parent, "tessera-vocabulary-"));
  }
  RETURN_IF_ERROR(WriteVocabularyRun(options_.fs, RunPath(spill_dir_->path(), runs_), SortedEntries(counts_)));
  ++runs_;
  counts_.clear();
  return OkStatus();
}

StatusOr<std::vector<std::string>> VocabularyCounter::Build(const proto::VocabularySpec& spec,
                                                            const std::string& column) const {
  std::vector<std::unique_ptr<SortedSource>> sources;
  sources.push_back(std::make_unique<MemorySource>(SortedEntries(counts_)));
  for (int run = 0; run < runs_; ++run) {
    ASSIGN_OR_RETURN(std::unique_ptr<VocabularyRunReader> reader,
                     VocabularyRunReader::Open(RunPath(spill_dir_->path(), run)));
    sources.push_back(std::make_unique<RunSource>(std::move(reader)));
  }
  ASSIGN_OR_RETURN(MergedCounts merged, MergedCounts::Start(std::move(sources)));
  // With max_size 0 every value kept is the result, but past the ids'
  // limit it is refused: then they are only counted, for the message.
  const int64_t limit = spec.max_size() > 0 ? spec.max_size() : kMaxCategoricalIds - 1;
  TopValues top(static_cast<size_t>(limit));
  int64_t kept = 0;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, merged.Next());
    if (!more) break;
    if (merged.count() < spec.min_count()) continue;
    ++kept;
    if (spec.max_size() > 0 || kept <= limit) top.Offer(merged.value(), merged.count());
  }
  if (spec.max_size() == 0 && kept > kMaxCategoricalIds - 1) {
    return InvalidArgumentError("data.table.categorical_columns '" + column + "': the vocabulary holds " +
                                std::to_string(kept) + " values seen at least " + std::to_string(spec.min_count()) +
                                " times, more than the " + std::to_string(kMaxCategoricalIds - 1) +
                                " ids can hold (set vocabulary.max_size, raise min_count, or use hash_buckets)");
  }
  std::vector<CountedValue> chosen = top.TakeSorted();
  std::vector<std::string> vocabulary;
  vocabulary.reserve(chosen.size());
  for (CountedValue& v : chosen) vocabulary.push_back(std::move(v.value));
  return vocabulary;
}

}  // namespace tessera
