#include "scheduler/job_shape.h"

#include <algorithm>
#include <cstdio>

#include "core/consistency.h"
#include "core/data_plan.h"
#include "core/dataset.h"
#include "core/idx_reader.h"
#include "core/image_folder_data.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "models/model.h"
#include "scheduler/lease_book.h"

namespace tessera {

namespace {

// The fraction as a person wrote it: 0.1, not 0.100000001.
std::string FloatText(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Status CheckClassNamesCount(const proto::DataSpec& data, int num_classes) {
  if (data.class_names_size() == 0 || data.class_names_size() == num_classes) return OkStatus();
  return InvalidArgumentError("data.class_names has " + std::to_string(data.class_names_size()) +
                              " names, and the data " + std::to_string(num_classes) + " classes");
}

StatusOr<DataShape> ReadTableShape(const proto::DataSpec& data, DataLayout* layout,
                                   const proto::TableVocabularies* stored, proto::TableLabels::Kind labels) {
  DataShape shape;
  ASSIGN_OR_RETURN(proto::TableData table,
                   DescribeTable(data, &shape.bad_records, stored, labels, &shape.distinct_sparse_ids));
  for (const proto::TableBlock& b : table.train_blocks()) shape.train_examples += b.records();
  for (const proto::TableBlock& b : table.validation_blocks()) shape.validation_examples += b.records();
  for (const proto::TableBlock& b : table.test_blocks()) shape.test_examples += b.records();
  shape.example_shape = {TableExampleValues(table)};
  for (const proto::CategoricalColumn& c : table.categorical_columns()) shape.categorical_rows.push_back(CategoricalRows(c));
  shape.num_classes = table.num_classes();
  if (layout != nullptr) layout->table = std::move(table);
  return shape;
}

StatusOr<DataShape> ReadLibsvmShape(const proto::DataSpec& data, DataLayout* layout) {
  DataShape shape;
  ASSIGN_OR_RETURN(proto::LibsvmData libsvm, DescribeLibsvm(data, &shape.bad_records));
  for (const proto::TableBlock& b : libsvm.train_blocks()) shape.train_examples += b.records();
  for (const proto::TableBlock& b : libsvm.validation_blocks()) shape.validation_examples += b.records();
  for (const proto::TableBlock& b : libsvm.test_blocks()) shape.test_examples += b.records();
  shape.example_shape = LibsvmExampleShape(libsvm);
  shape.sparse_features = libsvm.num_features();
  shape.num_classes = libsvm.num_classes();
  if (layout != nullptr) layout->libsvm = std::move(libsvm);
  return shape;
}

StatusOr<DataShape> ReadImageFolderShape(const proto::DataSpec& data, DataLayout* layout) {
  ASSIGN_OR_RETURN(const ImageFolderSplits splits, ListImageFolders(data));
  DataShape shape;
  shape.train_examples = static_cast<int64_t>(splits.train.images.size());
  shape.test_examples = static_cast<int64_t>(splits.test.images.size());
  shape.example_shape = ImageExampleShape(data.image());
  shape.num_classes = static_cast<int>(splits.train.class_names.size());
  shape.class_names = splits.train.class_names;
  if (layout != nullptr) layout->image_folder = DescribeImageFolders(splits);
  return shape;
}

StatusOr<DataShape> ReadDataShape(const proto::DataSpec& data, DataLayout* layout,
                                  const proto::TableVocabularies* stored, proto::TableLabels::Kind labels) {
  if (IsTableFormat(data)) return ReadTableShape(data, layout, stored, labels);
  if (IsLibsvmFormat(data)) return ReadLibsvmShape(data, layout);
  if (IsImageFolderFormat(data)) return ReadImageFolderShape(data, layout);
  DataShape shape;
  ASSIGN_OR_RETURN(int64_t train, CountExamples(DataPath(data, data.train_images()), DataPath(data, data.train_labels())));
  ASSIGN_OR_RETURN(int64_t test, CountExamples(DataPath(data, data.test_images()), DataPath(data, data.test_labels())));
  shape.train_examples = data.max_train_examples() > 0 ? std::min(train, data.max_train_examples()) : train;
  shape.test_examples = data.max_test_examples() > 0 ? std::min(test, data.max_test_examples()) : test;
  ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadIdxDims(DataPath(data, data.train_images())));
  shape.example_shape = ExampleShape(dims);
  shape.num_classes = kImageDatasetClasses;
  return shape;
}

// A validation_fraction holds out examples of the training set (IDX: chosen
// by the seed; tables: the last records). InvalidArgument when a split
// asked for holds no example.
Status HoldOutValidation(const proto::DataSpec& data, DataShape* shape) {
  if (data.validation_fraction() > 0) {
    shape->validation_examples = ValidationCount(data.validation_fraction(), shape->train_examples);
    shape->train_examples -= shape->validation_examples;
  }
  if (!HasValidationSplit(data) || shape->validation_examples >= 1) return OkStatus();
  if (data.validation_fraction() > 0) {
    return InvalidArgumentError("data.validation_fraction " + FloatText(data.validation_fraction()) + " of " +
                                std::to_string(shape->train_examples) + " training examples holds out none: raise it");
  }
  return InvalidArgumentError("data.validation_files hold no examples");
}

}  // namespace

std::vector<std::string> ClassNames(const proto::DataSpec& data, const DataShape& shape) {
  if (data.class_names_size() == shape.num_classes) return {data.class_names().begin(), data.class_names().end()};
  if (static_cast<int>(shape.class_names.size()) == shape.num_classes) return shape.class_names;
  std::vector<std::string> names;
  for (int c = 0; c < shape.num_classes; ++c) names.push_back(std::to_string(c));
  return names;
}

StatusOr<DataShape> ShapeOfData(const proto::DataSpec& data, DataLayout* layout,
                                const proto::TableVocabularies* stored, proto::TableLabels::Kind labels) {
  ASSIGN_OR_RETURN(DataShape shape, ReadDataShape(data, layout, stored, labels));
  RETURN_IF_ERROR(CheckClassNamesCount(data, shape.num_classes));
  RETURN_IF_ERROR(HoldOutValidation(data, &shape));
  return shape;
}

StatusOr<DataAndTask> ShapeOfJobData(const proto::JobSpec& spec, DataLayout* layout,
                                     const proto::TableVocabularies* stored) {
  proto::TableLabels::Kind labels = proto::TableLabels::CLASS_ID;
  if (IsTableFormat(spec.data())) {
    ASSIGN_OR_RETURN(labels, TableLabelKind(spec));
  }
  DataAndTask out;
  ASSIGN_OR_RETURN(out.data, ShapeOfData(spec.data(), layout, stored, labels));
  const proto::TableData* table = layout->table.has_value() ? &*layout->table : nullptr;
  ASSIGN_OR_RETURN(out.task, ChooseTask(spec, table, out.data.num_classes));
  return out;
}

StatusOr<JobShape> PlanJob(const proto::JobSpec& spec, const proto::TableVocabularies* stored) {
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  JobShape shape;
  ASSIGN_OR_RETURN(const DataAndTask data_and_task, ShapeOfJobData(spec, &shape.layout, stored));
  const DataShape& data = data_and_task.data;
  shape.task = data_and_task.task;
  shape.train_examples = data.train_examples;
  shape.test_examples = data.test_examples;
  shape.validation_examples = data.validation_examples;
  if (shape.train_examples < 1 || shape.test_examples < 1) {
    return InvalidArgumentError("the job needs training and test examples, got " + std::to_string(shape.train_examples) +
                                " and " + std::to_string(shape.test_examples));
  }

  shape.num_classes = data.num_classes;
  shape.distinct_sparse_ids = data.distinct_sparse_ids;
  shape.class_names = ClassNames(spec.data(), data);
  ASSIGN_OR_RETURN(auto model, Model::Create(WithTask(spec, shape.task).model(), data.example_shape, data.num_classes,
                                             Device::kCpu, data.categorical_rows, data.sparse_features));
  for (const TensorInfo& t : model->tensors()) {
    proto::TensorMeta meta;
    meta.set_name(t.name);
    for (int64_t d : t.shape) meta.add_shape(d);
    meta.set_offset(t.offset);
    meta.set_size(t.size);
    meta.set_init_bound(t.init_bound);
    meta.set_init_value(t.init_value);
    meta.set_trainable(t.trainable);
    shape.tensors.push_back(meta);
  }
  shape.num_keys = model->num_keys();
  shape.server_ranges = PlanServerSlices(model->tensors(), spec.cluster().servers());
  return shape;
}

Status CheckSameModel(const JobShape& shape, const proto::CheckpointManifest& m, const std::string& dir) {
  if (m.num_keys() != shape.num_keys || m.tensors_size() != static_cast<int>(shape.tensors.size())) {
    return InvalidArgumentError("checkpoint " + dir + " holds a model of " + std::to_string(m.tensors_size()) +
                                " tensors and " + std::to_string(m.num_keys()) + " parameters; the spec's has " +
                                std::to_string(shape.tensors.size()) + " and " + std::to_string(shape.num_keys));
  }
  for (size_t i = 0; i < shape.tensors.size(); ++i) {
    const proto::TensorMeta& a = m.tensors(static_cast<int>(i));
    const proto::TensorMeta& b = shape.tensors[i];
    if (a.name() != b.name() || a.offset() != b.offset() || a.size() != b.size() ||
        !std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end())) {
      return InvalidArgumentError("checkpoint " + dir + " holds tensor " + a.name() + " of another shape than the spec's " +
                                  b.name());
    }
  }
  return OkStatus();
}

proto::ClusterMap MakeClusterMap(const proto::JobSpec& spec, const JobShape& shape,
                                 const std::vector<std::string>& server_addresses, const JobStart& start) {
  proto::ClusterMap map;
  *map.mutable_spec() = WithTask(spec, shape.task);
  map.set_num_workers(spec.cluster().workers());
  map.set_num_keys(shape.num_keys);
  map.set_train_examples(shape.train_examples);
  map.set_test_examples(shape.test_examples);
  map.set_validation_examples(shape.validation_examples);
  LeaseBook plan;  // servers' learning-rate schedules count epochs in these steps (ASP: pushes)
  plan.StartTraining(0, shape.train_examples, spec.data().shards_per_worker() * map.num_workers(), map.num_workers(),
                     IsSynchronous(spec));
  map.set_steps_per_epoch(plan.StepsPerWorker(spec.batch_size()));
  const int64_t epoch_began = start.step - start.skip_steps;
  map.set_schedule_step_offset(start.epoch * map.steps_per_epoch() - epoch_began);
  for (const proto::TensorMeta& t : shape.tensors) *map.add_tensors() = t;
  if (shape.layout.table.has_value()) *map.mutable_table_data() = *shape.layout.table;
  if (shape.layout.image_folder.has_value()) *map.mutable_image_folder() = *shape.layout.image_folder;
  if (shape.layout.libsvm.has_value()) *map.mutable_libsvm_data() = *shape.layout.libsvm;
  for (size_t s = 0; s < server_addresses.size(); ++s) {
    proto::ServerInfo* info = map.add_servers();
    info->set_rank(static_cast<int>(s));
    info->set_address(server_addresses[s]);
    for (const KeyRange& r : shape.server_ranges[s]) {
      proto::KeyRange* out = info->add_ranges();
      out->set_begin(r.begin);
      out->set_end(r.end);
    }
  }
  return map;
}

}  // namespace tessera
