// KvClient: a worker's connection to every parameter server. Push sends each
// server its slices of the gradient buffer without copying, in parts of about
// 512 KiB; Pull asks for the parameters; WaitParams gathers PARAMS for every
// slice of every server into the flat parameter buffer.
//
// Not thread-safe. *transport must outlive this.
#ifndef TESSERA_WORKER_KV_CLIENT_H_
#define TESSERA_WORKER_KV_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/drop_log.h"
#include "core/key_range.h"
#include "core/status.h"
#include "core/transport.h"

namespace tessera {

struct ServerEndpoint {
  std::string address;
  std::vector<KeyRange> ranges;
  std::string public_key;  // CURVE (Z85); empty without it
};

class KvClient {
 public:
  KvClient(Transport* transport, std::vector<ServerEndpoint> servers, int rank, uint64_t job_id)
      : transport_(transport), servers_(std::move(servers)), rank_(rank), job_id_(job_id) {}

  // When set, waits end with Aborted once *stop is true, and with Unavailable
  // once *lost (the scheduler is gone) is. Both must outlive this.
  void set_stop(const std::atomic<bool>* stop, const std::atomic<bool>* lost = nullptr) {
    stop_ = stop;
    lost_ = lost;
  }

  // When set, a wait also watches *socket (a worker's scheduler connection)
  // and calls on_message whenever it is readable; the wait ends with Aborted
  // when on_message returns true (say, on SHUTDOWN). *socket must outlive this.
  void set_interrupt(Socket* socket, std::function<bool()> on_message) {
    interrupt_ = socket;
    on_interrupt_ = std::move(on_message);
  }

  // Sparse gradients: every slice inside one of `tensors` (the model's
  // sparse_tensors()) is pushed as a sparse frame of only the runs of
  // *touched (the model's touched_runs(), read at each push; the gradient is
  // zero elsewhere) inside it, whenever that is smaller than the whole
  // slice. *touched must outlive this.
  void set_sparse(std::vector<KeyRange> tensors, const std::vector<KeyRange>* touched) {
    sparse_tensors_ = std::move(tensors);
    touched_ = touched;
  }

  // Sparse pulls: a push's slices inside the sparse tensors want no PARAMS
  // (their PUSH_ACKs are consumed by the next wait); the worker asks for
  // only the rows its next step reads with PullRows instead, before
  // WaitParams. Exact, because a step reads no other rows of those tensors;
  // the rest of them in the worker's parameters goes stale until a PullRows
  // of every row (or a Pull).
  void set_sparse_pulls(bool on) { sparse_pulls_ = on; }
  bool sparse_pulls() const { return sparse_pulls_; }

  // Bytes of tensor frames pushed so far (headers not counted).
  uint64_t pushed_bytes() const { return pushed_bytes_; }
  // Bytes of parameter frames received so far (headers not counted).
  uint64_t pulled_bytes() const { return pulled_bytes_; }

  // Opens a DEALER to every server. InvalidArgument for a bad address.
  Status Connect();

  // Sends every server its ranges of `grads` (flat, key-indexed), the
  // gradient summed over `examples` examples for global step `step`. With
  // want_params each server answers PARAMS once the step is applied.
  Status Push(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads, bool want_params);

  // Push restricted to the slices that lie inside `keys` (a layer's tensors,
  // which are whole slices), so a worker can send one layer's gradients while
  // it still computes the layers before it. Pushing each key range of a
  // tiling once is the same as one Push.
  Status PushKeys(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads, KeyRange keys,
                  bool want_params);

  // Asks every server for its parameters at version >= step.
  Status Pull(int64_t step);

  // Asks every server holding slices of the sparse tensors for only `rows`
  // (sorted, disjoint key runs inside those tensors) of them, at version >=
  // `version`; PARAMS answer every such slice (with none of its rows when
  // none is asked for) as a sparse frame.
  Status PullRows(int64_t version, const std::vector<KeyRange>& rows);

  // Waits for PARAMS of version >= min_version for every slice and
  // writes them into params (flat, key-indexed). Returns the lowest version
  // seen through *version when not null. DeadlineExceeded after timeout_ms
  // without progress; Aborted when a server answers ERROR or on stop;
  // malformed, stale or foreign replies are logged and dropped. When set,
  // on_slice is called with each slice's keys once they are written (a
  // sparse one's runs only, but with the whole slice's keys).
  using SliceWritten = std::function<void(KeyRange keys)>;
  Status WaitParams(float* params, int timeout_ms, int64_t* version = nullptr, int64_t min_version = 0,
                    const SliceWritten& on_slice = nullptr);

  // Waits for the PUSH_ACKs of every part pushed without want_params.
  Status WaitAcks(int timeout_ms);

  int num_servers() const { return static_cast<int>(servers_.size()); }

 private:
  // A header from this worker for `op` at `step`.
  proto::Header Request(proto::Op op, int64_t step) const;
  // Sends parts[s] (groups of server s's slice indices) round-robin over servers.
  Status SendParts(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads,
                   const std::vector<std::vector<std::vector<int>>>& parts, bool want_params);
  Status WaitAll(proto::Op op, float* params, int timeout_ms, int64_t* version, int64_t min_version,
                 const SliceWritten& on_slice);
  // The frame pushing slice `r` of grads: dense, or sparse (setting *sparse).
  OutFrame GradientFrame(const KeyRange& r, const std::shared_ptr<std::vector<float>>& grads, bool* sparse) const;
  // Groups consecutive slices inside `keys` into parts of about kPartBytes;
  // slices of a sparse tensor never share a part with others.
  std::vector<std::vector<int>> GroupSlices(const std::vector<KeyRange>& slices, KeyRange keys) const;
  bool InSparseTensor(const KeyRange& r) const;
  // The parts of `runs` (sorted, disjoint) inside r, relative to its begin.
  static std::vector<KeyRange> RunsInside(const std::vector<KeyRange>& runs, const KeyRange& r);
  // The index of `range` among server's slices, or -1.
  int FindSlice(int server, const proto::KeyRange& range) const;

  // A push goes out in messages of about this many bytes (whole slices), so
  // a server applies the first while the next is still arriving.
  static constexpr uint64_t kPartBytes = 512 * 1024;

  Transport* transport_;
  std::vector<ServerEndpoint> servers_;
  int rank_;
  uint64_t job_id_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::vector<std::vector<std::vector<int>>> parts_;  // per server: groups of slice indices
  std::vector<size_t> expected_acks_;                 // per server: acks still owed
  std::vector<KeyRange> sparse_tensors_;
  const std::vector<KeyRange>* touched_ = nullptr;
  uint64_t pushed_bytes_ = 0, pulled_bytes_ = 0;
  bool sparse_pulls_ = false;
  const std::atomic<bool>* stop_ = nullptr;
  const std::atomic<bool>* lost_ = nullptr;
  Socket* interrupt_ = nullptr;
  std::function<bool()> on_interrupt_;
  // The lines of dropped replies, rate-limited.
  DropLog drops_{SystemClock()};
};

}  // namespace tessera

#endif  // TESSERA_WORKER_KV_CLIENT_H_
