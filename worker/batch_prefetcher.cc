#include "worker/batch_prefetcher.h"

#include <algorithm>

namespace tessera {

BatchPrefetcher::BatchPrefetcher(const ImageDataset* dataset, float mean, float std)
    : reader_(dataset, mean, std), thread_([this] { Loop(); }) {}

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
    cv_.wait(lock, [&] { return stop_ || (pending_ && next_.x.empty()); });
    if (stop_) return;
    // Read outside the lock; Read() waits for pending_ to clear before touching next_.
    std::vector<int64_t> examples = next_.examples;
    lock.unlock();
    std::vector<float> x;
    std::vector<uint8_t> labels;
    reader_.Read(examples, 0, static_cast<int64_t>(examples.size()), &x, &labels);
    lock.lock();
    next_.x = std::move(x);
    next_.labels = std::move(labels);
    pending_ = false;
    cv_.notify_all();
  }
}

void BatchPrefetcher::Read(const std::vector<int64_t>& order, int64_t begin, int64_t count, int64_t limit,
                           std::vector<float>* x, std::vector<uint8_t>* labels) {
  auto example = [&](int64_t position) { return order.empty() ? position : order[position]; };
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pending_; });
  bool hit = static_cast<int64_t>(next_.examples.size()) == count && !next_.x.empty();
  for (int64_t i = 0; hit && i < count; ++i) hit = next_.examples[i] == example(begin + i);
  if (hit) {
    x->swap(next_.x);
    labels->swap(next_.labels);
    ++hits_;
  } else {
    reader_.Read(order, begin, count, x, labels);
    ++misses_;
  }
  // Guess the next batch of this shard.
  const int64_t next_begin = begin + count;
  const int64_t next_end = std::min(limit, next_begin + count);
  next_.examples.clear();
  next_.x.clear();
  next_.labels.clear();
  if (count > 0 && next_end > next_begin) {
    for (int64_t p = next_begin; p < next_end; ++p) next_.examples.push_back(example(p));
    pending_ = true;
    cv_.notify_all();
  }
}

}  // namespace tessera
