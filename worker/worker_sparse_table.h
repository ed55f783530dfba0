// WorkerSparseTable: a worker's side of the sparse table its model's
// sparse_embedding first layer reads (issue 16). Per batch:
//
//   Prepare   the batch's 64-bit ids become its distinct ids, and each id
//             slot of x its row among them (worker/sparse_batch.h);
//   Pull      those rows from the servers that hold them, at the table
//             version the step needs (SparseTableClient);
//   Bind      the rows, and a gradient buffer, to the model for its
//             forward and backward (Model::BindSparseRows);
//   Push      after backward, a gradient row per distinct id.
//
// A model with a wide part (SparseEmbeddingSpec.wide_table) has a second
// table, of one-float rows: each step Prepare makes the batch's wide ids
// from its field ids (core/feature_cross.h), and the wide table's rows are
// pulled, bound (Model::BindWideRows) and pushed beside the first's.
//
// Not thread-safe: the worker's thread. *transport and *model must outlive it.
#ifndef TESSERA_WORKER_WORKER_SPARSE_TABLE_H_
#define TESSERA_WORKER_WORKER_SPARSE_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/transport.h"
#include "models/model.h"
#include "proto/wire.pb.h"
#include "worker/sparse_batch.h"
#include "worker/sparse_table_client.h"

namespace tessera {

class WorkerSparseTable {
 public:
  // The table `model` reads (its sparse_embedding's, in map's job spec, and
  // its wide_table),
  // for examples of `values_per_example` floats of which the last
  // `ids_per_example` are id slots. Null (and OK) when the model reads none.
  // InvalidArgument when the layer's table is not in the spec or the slots
  // do not fit the examples.
  static StatusOr<std::unique_ptr<WorkerSparseTable>> Create(Transport* transport, const proto::ClusterMap& map,
                                                             uint64_t job_id, const Model& model,
                                                             int64_t values_per_example, int64_t ids_per_example);

  // Waits end on stop, or when on_interrupt returns true (SparseTableClient).
  void set_stop(const std::atomic<bool>* stop) { client_->set_stop(stop); }
  void set_interrupt(Socket* socket, std::function<bool()> on_interrupt) {
    client_->set_interrupt(socket, std::move(on_interrupt));
  }

  Status Connect() { return client_->Connect(); }
  // SparseTableClient::set_pull_every_server (SSP).
  void set_pull_every_server(bool on) { client_->set_pull_every_server(on); }

  // The batch of `count` examples x[count, values_per_example] whose id
  // slots hold slot_ids: its distinct ids, and x's slots rewritten as rows.
  Status Prepare(const std::vector<uint64_t>& slot_ids, int64_t count, float* x);
  // The prepared batch's rows, at table version >= `version`, bound to the
  // model with a gradient buffer. *got_version (when not null): the lowest
  // version a server answered with (INT64_MAX when the batch has no rows).
  Status PullAndBind(int64_t version, Model* model, int timeout_ms, int64_t* got_version = nullptr);
  // The gradient rows backward wrote, for `step`, summed over `examples`.
  Status Push(int64_t step, int64_t examples);

  int64_t rows() const { return static_cast<int64_t>(batch_.ids.size()); }
  int64_t wide_rows() const { return static_cast<int64_t>(wide_batch_.ids.size()); }
  uint64_t pushed_bytes() const { return client_->pushed_bytes(); }
  uint64_t pulled_bytes() const { return client_->pulled_bytes(); }

 private:
  WorkerSparseTable(std::unique_ptr<SparseTableClient> client, int table, int dim, int64_t numeric, int64_t slots,
                    const proto::SparseEmbeddingSpec& layer, int wide_table)
      : client_(std::move(client)),
        table_(table),
        dim_(dim),
        numeric_(numeric),
        slots_(slots),
        layer_(layer),
        wide_table_(wide_table) {}

  std::unique_ptr<SparseTableClient> client_;
  const int table_;
  const int dim_;
  const int64_t numeric_, slots_;  // an example's values: numeric_ features, then slots_ id slots
  SparseBatch batch_;
  std::vector<float> rows_, row_grads_;
  // The wide part: its table (-1: none), and the batch's wide ids, each
  // example's wide slots as rows of them, and their rows and gradients.
  const proto::SparseEmbeddingSpec layer_;
  const int wide_table_;
  SparseBatch wide_batch_;
  std::vector<float> wide_slots_, wide_rows_, wide_grads_;
};

}  // namespace tessera

#endif  // TESSERA_WORKER_WORKER_SPARSE_TABLE_H_
