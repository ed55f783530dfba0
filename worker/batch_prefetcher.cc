#include "worker/batch_prefetcher.h"

#include <algorithm>

namespace tessera {

BatchPrefetcher::BatchPrefetcher(ExampleReader* reader) : reader_(reader), thread_([this] { Loop(); }) {}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchPrefetcher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (pending_ && !next_.read); });
    if (stop_) return;
    // Read outside the lock; Read() waits for pending_ to clear before touching next_.
    std::vector<int64_t> examples = next_.examples;
    lock.unlock();
    Batch batch;
    batch.status = reader_->ReadWithIds(examples, &batch.x, &batch.labels, &batch.ids);
    lock.lock();
    next_.x = std::move(batch.x);
    next_.labels = std::move(batch.labels);
    next_.ids = std::move(batch.ids);
    next_.status = std::move(batch.status);
    next_.read = true;
    pending_ = false;
    cv_.notify_all();
  }
}

Status BatchPrefetcher::Read(const ExampleOrder& order, int64_t begin, int64_t count, int64_t limit,
                             std::vector<float>* x, std::vector<float>* labels, std::vector<uint64_t>* ids) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pending_; });
  bool hit = next_.read && static_cast<int64_t>(next_.examples.size()) == count;
  for (int64_t i = 0; hit && i < count; ++i) hit = next_.examples[i] == order.At(begin + i);
  Status status;
  if (hit) {
    x->swap(next_.x);
    labels->swap(next_.labels);
    if (ids != nullptr) ids->swap(next_.ids);
    status = next_.status;
    ++hits_;
  } else {
    std::vector<int64_t> examples(count);
    for (int64_t i = 0; i < count; ++i) examples[i] = order.At(begin + i);
    status = reader_->ReadWithIds(examples, x, labels, ids);
    ++misses_;
  }
  // Guess the next batch of this shard.
  const int64_t next_begin = begin + count;
  const int64_t next_end = std::min(limit, next_begin + count);
  next_.examples.clear();
  next_.x.clear();
  next_.labels.clear();
  next_.ids.clear();
  next_.read = false;
  if (status.ok() && count > 0 && next_end > next_begin) {
    for (int64_t p = next_begin; p < next_end; ++p) next_.examples.push_back(order.At(p));
    pending_ = true;
    cv_.notify_all();
  }
  return status;
}

}  // namespace tessera
