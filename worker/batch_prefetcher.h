// BatchPrefetcher: reads the next batch on its own thread while the current
// one trains, so the input pipeline stays off the step's critical path.
//
// After serving positions [begin, begin+count) of an order it guesses that
// the next request is the following batch of the same shard, [begin+count,
// min(begin+2*count, limit)), and reads those examples in the background. A
// request is served from the prefetched batch only when it asks for exactly
// those examples (compared by example index, so a changed order can never
// serve stale data); anything else is read on the spot. Reads never overlap:
// the reader is used by one thread at a time.
#ifndef TESSERA_WORKER_BATCH_PREFETCHER_H_
#define TESSERA_WORKER_BATCH_PREFETCHER_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"
#include "worker/example_reader.h"

namespace tessera {

class BatchPrefetcher {
 public:
  // Borrows *reader, which must outlive the prefetcher.
  explicit BatchPrefetcher(ExampleReader* reader);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Fills x and labels with the examples at positions [begin, begin+count)
  // of `order`, and *ids, when not null, with their 64-bit ids
  // (ExampleReader::ReadWithIds); `limit` is where the current shard ends,
  // so the guess stays inside it. The reader's error, if reading them
  // failed.
  Status Read(const ExampleOrder& order, int64_t begin, int64_t count, int64_t limit, std::vector<float>* x,
              std::vector<float>* labels, std::vector<uint64_t>* ids = nullptr);

  // Requests served from a prefetched batch, and read on the spot.
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  struct Batch {
    std::vector<int64_t> examples;
    std::vector<float> x;
    std::vector<float> labels;
    std::vector<uint64_t> ids;  // ids_per_example() per example; empty for most data
    Status status;
    bool read = false;
  };
  void Loop();

  ExampleReader* reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool pending_ = false;  // next_ is queued or being read
  Batch next_;            // guarded by mu_ while pending_
  int64_t hits_ = 0, misses_ = 0;
  std::thread thread_;    // last: starts after everything it uses
};

}  // namespace tessera

#endif  // TESSERA_WORKER_BATCH_PREFETCHER_H_
