// The shape of a job: what the scheduler derives from the spec and the data
// files' headers before any node registers — how many examples there are,
// the model's tensors, and the key ranges each server holds. The cluster map
// carries it to every node.
#ifndef TESSERA_SCHEDULER_JOB_SHAPE_H_
#define TESSERA_SCHEDULER_JOB_SHAPE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

struct JobShape {
  // After data.max_train_examples / max_test_examples; both >= 1.
  int64_t train_examples = 0, test_examples = 0;
  std::vector<proto::TensorMeta> tensors;  // in key order
  uint64_t num_keys = 0;
  std::vector<std::vector<KeyRange>> server_ranges;  // by server rank
  // CSV/TSV data: its blocks, classes and scaling (DescribeTable).
  std::optional<proto::TableData> table_data;
  // The classes' names (data.class_names, or "0", "1", ...), one per class.
  std::vector<std::string> class_names;
  int num_classes = 0;
};

// What a job's data set is: examples per split (after max_*_examples), one
// example's shape and the classes.
struct DataShape {
  int64_t train_examples = 0, test_examples = 0;
  std::vector<int64_t> example_shape;
  int num_classes = 0;
};

// The shape of `data`: IDX from the files' headers; a table by reading every
// record (DescribeTable), which *table_data (when not null) then holds.
// InvalidArgument too when data.class_names does not name every class.
// Errors as the readers give them (InvalidArgument for a mistake in the
// data, NotFound, DataLoss, ...).
StatusOr<DataShape> ShapeOfData(const proto::DataSpec& data, std::optional<proto::TableData>* table_data);
// data.class_names when it names `num_classes` classes; else "0", "1", ...
std::vector<std::string> ClassNames(const proto::DataSpec& data, int num_classes);

// Validates `spec`, counts the examples in its data files (IDX: from the
// headers; tables: reading every record, DescribeTable) and builds its model
// (on no device) to learn the tensors. InvalidArgument for a bad spec
// or a job without training or test examples; the data reader's error
// (NotFound, DataLoss, ...) for a missing or damaged file.
StatusOr<JobShape> PlanJob(const proto::JobSpec& spec);

// OK when checkpoint `m` (read from `dir`) holds the model of `shape`: the
// same tensors, shapes and key offsets. InvalidArgument naming the first
// difference otherwise.
Status CheckSameModel(const JobShape& shape, const proto::CheckpointManifest& m, const std::string& dir);

// Where a job starts: at epoch `epoch`, of which `skip_steps` steps are done
// (a resumed job), with the global step at `step`.
struct JobStart {
  int epoch = 0;
  int64_t skip_steps = 0;
  int64_t step = 0;
};

// The cluster map every node gets, but for its rank and (servers of a
// resumed job) what to restore: the spec, the tensors, each server's address
// and key ranges, and the learning-rate schedule's steps per epoch and step
// offset (resumed with other workers, the schedule goes on from the epoch,
// not the step).
proto::ClusterMap MakeClusterMap(const proto::JobSpec& spec, const JobShape& shape,
                                 const std::vector<std::string>& server_addresses, const JobStart& start);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_JOB_SHAPE_H_
