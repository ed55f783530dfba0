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
#include "core/libsvm_data.h"
#include "core/table_data.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/job_task.h"

namespace tessera {

// What the scheduler found in the data that the workers need too; the
// cluster map carries it.
struct DataLayout {
  std::optional<proto::TableData> table;               // CSV/TSV: DescribeTable
  std::optional<proto::ImageFolderData> image_folder;  // IMAGE_FOLDER: DescribeImageFolders
  std::optional<proto::LibsvmData> libsvm;             // LIBSVM: DescribeLibsvm
};

struct JobShape {
  // After data.max_train_examples / max_test_examples; both >= 1. Training
  // examples are those left after a validation_fraction held some out.
  int64_t train_examples = 0, test_examples = 0;
  // The validation split's (>= 1 when the spec asks for one; else 0).
  int64_t validation_examples = 0;
  std::vector<proto::TensorMeta> tensors;  // in key order
  uint64_t num_keys = 0;
  std::vector<std::vector<KeyRange>> server_ranges;  // by server rank
  // CSV/TSV data: its blocks, classes and scaling; image folders: their
  // classes and listings' digests.
  DataLayout layout;
  // The classes' names (data.class_names, an image folder's class folders,
  // or "0", "1", ...), one per class.
  std::vector<std::string> class_names;
  int num_classes = 0;
  // The training files' estimated distinct sparse ids (DataShape's): about
  // the rows training creates in the model's sparse tables.
  double distinct_sparse_ids = 0;
  // The loss the job trains with (model.loss, or what AUTO resolved to) and
  // the line that says so.
  JobTask task;
};

// What a job's data set is: examples per split (after max_*_examples; a
// validation_fraction's held out of the training examples), one example's
// shape and the classes.
struct DataShape {
  int64_t train_examples = 0, test_examples = 0, validation_examples = 0;
  std::vector<int64_t> example_shape;
  // A table's categorical columns' numbers of ids (Model::Create's
  // categorical_rows); empty for other data.
  std::vector<int64_t> categorical_rows;
  // libsvm data's number of features (Model::Create's sparse_features); 0 for other data.
  int64_t sparse_features = 0;
  // A table's estimated distinct 64-bit ids in its training files
  // (DescribeTable); 0 for other data.
  double distinct_sparse_ids = 0;
  int num_classes = 0;
  BadRecords bad_records;  // a table's or libsvm data's, passed over (skip_bad_records)
  // The names the data gives its classes (an image folder's class folders,
  // sorted); empty when it gives none.
  std::vector<std::string> class_names;
};

// The shape of `data`: IDX from the files' headers; a table by reading every
// record (DescribeTable); image folders by listing both (ListImageFolders,
// no image read). *layout (when not null) then holds what the workers need.
// A table's labels are read by the rule `labels` (TableLabelKind).
// InvalidArgument too when data.class_names does not name every class.
// Errors as the readers give them (InvalidArgument for a mistake in the
// data, NotFound, DataLoss, ...). A table's categorical columns are built
// from the training records, or taken from `stored` when it is not null
// (DescribeTable).
StatusOr<DataShape> ShapeOfData(const proto::DataSpec& data, DataLayout* layout,
                                const proto::TableVocabularies* stored = nullptr,
                                proto::TableLabels::Kind labels = proto::TableLabels::CLASS_ID);

// The job's data shape and task, as PlanJob finds them: a table's labels
// read by the rule the spec needs (TableLabelKind), then the task chosen
// (ChooseTask). Errors as those functions give them. `stored` as for
// ShapeOfData.
struct DataAndTask {
  DataShape data;
  JobTask task;
};
// REQUIRES: layout != nullptr.
StatusOr<DataAndTask> ShapeOfJobData(const proto::JobSpec& spec, DataLayout* layout,
                                     const proto::TableVocabularies* stored = nullptr);
// data.class_names when it names `shape`'s classes; else the data's own
// names (shape.class_names); else "0", "1", ...
std::vector<std::string> ClassNames(const proto::DataSpec& data, const DataShape& shape);

// Validates `spec`, counts the examples in its data files (IDX: from the
// headers; tables: reading every record, DescribeTable; image folders:
// listing them) and builds its model
// (on no device) to learn the tensors. InvalidArgument for a bad spec
// or a job without training or test examples, or whose validation split
// holds none; the data reader's error
// (NotFound, DataLoss, ...) for a missing or damaged file. A table's
// categorical columns come from `stored` when it is not null (a resumed job).
StatusOr<JobShape> PlanJob(const proto::JobSpec& spec, const proto::TableVocabularies* stored = nullptr);

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
// resumed job) what to restore: the spec (its model.loss the job's task's,
// never AUTO), the tensors, each server's address
// and key ranges, and the learning-rate schedule's steps per epoch and step
// offset (resumed with other workers, the schedule goes on from the epoch,
// not the step).
proto::ClusterMap MakeClusterMap(const proto::JobSpec& spec, const JobShape& shape,
                                 const std::vector<std::string>& server_addresses, const JobStart& start);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_JOB_SHAPE_H_
