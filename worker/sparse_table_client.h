// SparseTableClient: a worker's connection to the servers for the job's
// sparse tables (model.sparse_table, issue 16), beside KvClient's for the
// dense parameters and on sockets of its own, so the replies of the two
// never interleave. Ids are spread over the servers by ServerOfId; a pull or
// push costs the rows it names, on the wire and on the servers, never the
// table's size. docs/PROTOCOL.md, "Sparse tables".
//
// Example (one BSP step of a model over table 0):
//   client.PullRows(0, step, ids, rows.data(), timeout_ms);   // ids: sorted, distinct
//   ... forward and backward over rows, giving row_grads ...
//   client.PushRows(0, step, examples, ids, row_grads.data());
//
// Not thread-safe. *transport must outlive this.
#ifndef TESSERA_WORKER_SPARSE_TABLE_CLIENT_H_
#define TESSERA_WORKER_SPARSE_TABLE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/drop_log.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/transport.h"

namespace tessera {

class SparseTableClient {
 public:
  // `dims`: each table's floats per row, in model.sparse_table order.
  SparseTableClient(Transport* transport, std::vector<std::string> server_addresses, std::vector<int> dims, int rank,
                    uint64_t job_id)
      : transport_(transport), addresses_(std::move(server_addresses)), dims_(std::move(dims)), rank_(rank),
        job_id_(job_id) {}

  // The servers' CURVE public keys, in the order of the addresses (the
  // cluster map's); needed before Connect when the transport uses CURVE.
  // Default none.
  void set_server_public_keys(std::vector<std::string> keys) { public_keys_ = std::move(keys); }

  // When set, waits end with Aborted once *stop is true. It must outlive this.
  void set_stop(const std::atomic<bool>* stop) { stop_ = stop; }

  // With `on`, PullRows asks every server, those holding none of the ids
  // with an empty pull, so that the worker knows every server's table is at
  // the version before it pushes its next step there: SSP's servers refuse
  // a push more than `staleness` steps ahead of their table. Default off.
  void set_pull_every_server(bool on) { pull_every_server_ = on; }

  // When set, a wait also watches *socket (a worker's scheduler connection)
  // and calls on_message whenever it is readable; the wait ends with Aborted
  // when on_message returns true (a SHUTDOWN or ROLLBACK), as KvClient's.
  void set_interrupt(Socket* socket, std::function<bool()> on_message) {
    interrupt_ = socket;
    on_interrupt_ = std::move(on_message);
  }

  // Opens a DEALER to every server. InvalidArgument for a bad address.
  Status Connect();

  // The rows of `ids` (strictly increasing) of `table`, at the table's
  // version >= `version`, into rows[ids.size() * dim]. Asks only the servers
  // holding some of the ids. DeadlineExceeded after timeout_ms without an
  // answer; Aborted when a server answers ERROR (a refused push or pull) or
  // on stop; malformed or foreign replies are logged and dropped.
  // *got_version (when not null): the lowest version a server answered
  // with, INT64_MAX when no server was asked (no ids).
  Status PullRows(int table, int64_t version, std::span<const uint64_t> ids, float* rows, int timeout_ms,
                  int64_t* got_version = nullptr);

  // Worker's gradient rows grads[ids.size() * dim] of `table` for `step`,
  // summed over `examples` examples: each server gets its ids' rows, every
  // server a push (BSP: an empty one completes its step too).
  Status PushRows(int table, int64_t step, int64_t examples, std::span<const uint64_t> ids, const float* grads);

  uint64_t pushed_bytes() const { return pushed_bytes_; }
  uint64_t pulled_bytes() const { return pulled_bytes_; }

 private:
  // Per server, the positions in `ids` of the ids it holds (increasing).
  std::vector<std::vector<size_t>> SplitByServer(int table, std::span<const uint64_t> ids) const;

  Transport* transport_;
  std::vector<std::string> addresses_;
  std::vector<std::string> public_keys_;  // empty, or one per address
  std::vector<int> dims_;
  int rank_;
  uint64_t job_id_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  uint64_t pushed_bytes_ = 0, pulled_bytes_ = 0;
  const std::atomic<bool>* stop_ = nullptr;
  bool pull_every_server_ = false;
  Socket* interrupt_ = nullptr;
  std::function<bool()> on_interrupt_;
  DropLog drops_{SystemClock()};
};

}  // namespace tessera

#endif  // TESSERA_WORKER_SPARSE_TABLE_CLIENT_H_
