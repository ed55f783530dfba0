// The data of a table (CSV/TSV), image-folder or libsvm job being exported, as its
// workers saw it: the job planned again from its spec exactly as the
// scheduler plans it (scheduler/job_shape.h's PlanJob: the table read whole
// for its blocks, classes and each feature's scaling, which the checkpoint
// does not carry; the image folders listed for their classes), the readers
// training uses over it (worker/example_reader.h's OpenExampleReader), and
// the preprocessing the export records in its manifest
// (export/model_preprocessing.h). IDX jobs do not come here: the export
// reads their files through core/dataset.h as before.
// Functions and values: thread-compatible.
#ifndef TESSERA_EXPORT_EXPORT_DATA_H_
#define TESSERA_EXPORT_EXPORT_DATA_H_

#include <memory>
#include <string>
#include <vector>

#include "core/spec.h"
#include "core/status.h"
#include "export/model_preprocessing.h"
#include "models/layer.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "worker/example_reader.h"

namespace tessera {

struct ExportData {
  proto::ClusterMap map;  // what a worker gets: the spec, counts, table blocks or folder digests
  Shape input_shape;      // one example's ([K, 2] pairs for libsvm data)
  // A table's categorical columns' numbers of ids (Model::Create's
  // categorical_rows); empty for other data.
  std::vector<int64_t> categorical_rows;
  int64_t sparse_features = 0;  // libsvm data's features (Model::Create's sparse_features); else 0
  int num_classes = 0;    // the data's classes (2 for a binary task)
  // The job's loss as the scheduler resolved it (never AUTO): its task.
  proto::Loss loss = proto::SOFTMAX_CROSS_ENTROPY;
  ModelPreprocessing preprocessing;  // kind kTable, kImage, kLibsvm or kCriteo, with the task and class names
};

// True for the formats PlanExportData handles (CSV, TSV, IMAGE_FOLDER, LIBSVM,
// CRITEO).
bool IsExportDataFormat(const proto::DataSpec& data);

// Plans `spec`'s data as the scheduler does and describes its preprocessing.
// `trained_examples`, when > 0, is the training examples the checkpoint's
// job had (its manifest's examples_per_epoch): the training files must still
// hold as many, or the scaling read from them now would not be training's.
// A table's categorical columns with a vocabulary take it from `stored`
// (the run's RUN/table_vocabulary.pb, ReadTableVocabularies), as a resumed
// job does, so ids are those the parameters were trained with; hashed
// columns need only the spec (`stored` may be null when no column has a
// vocabulary).
// REQUIRES: IsExportDataFormat(spec.data()). InvalidArgument (naming the
// file, line and column for a bad record; or the counts, for training files
// that changed; or a vocabulary value that is not UTF-8, which the JSON
// manifest cannot hold) or NotFound when the data cannot be read: the
// export needs the training data of such a job even without evaluating,
// since its scaling and classes come from it.
StatusOr<ExportData> PlanExportData(const proto::JobSpec& spec, int64_t trained_examples,
                                    const proto::TableVocabularies* stored = nullptr);

// A reader of `split` over data planned by PlanExportData: the test split
// for evaluation, the training split for int8 calibration.
StatusOr<std::unique_ptr<ExampleReader>> OpenExportReader(const ExportData& data, Split split);

}  // namespace tessera

#endif  // TESSERA_EXPORT_EXPORT_DATA_H_
