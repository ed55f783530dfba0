#include "scheduler/job_shape.h"

#include <algorithm>

#include "core/dataset.h"
#include "core/idx_reader.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "models/model.h"
#include "scheduler/lease_book.h"

namespace tessera {

namespace {

Status CheckClassNamesCount(const proto::DataSpec& data, int num_classes) {
  if (data.class_names_size() == 0 || data.class_names_size() == num_classes) return OkStatus();
  return InvalidArgumentError("data.class_names has " + std::to_string(data.class_names_size()) +
                              " names, and the data " + std::to_string(num_classes) + " classes");
}

StatusOr<DataShape> ReadDataShape(const proto::DataSpec& data, std::optional<proto::TableData>* table_data) {
  DataShape shape;
  if (IsTableFormat(data)) {
    ASSIGN_OR_RETURN(proto::TableData table, DescribeTable(data));
    for (const proto::TableBlock& b : table.train_blocks()) shape.train_examples += b.records();
    for (const proto::TableBlock& b : table.test_blocks()) shape.test_examples += b.records();
    shape.example_shape = {table.feature_columns_size()};
    shape.num_classes = table.num_classes();
    if (table_data != nullptr) *table_data = std::move(table);
    return shape;
  }
  ASSIGN_OR_RETURN(int64_t train, CountExamples(DataPath(data, data.train_images()), DataPath(data, data.train_labels())));
  ASSIGN_OR_RETURN(int64_t test, CountExamples(DataPath(data, data.test_images()), DataPath(data, data.test_labels())));
  shape.train_examples = data.max_train_examples() > 0 ? std::min(train, data.max_train_examples()) : train;
  shape.test_examples = data.max_test_examples() > 0 ? std::min(test, data.max_test_examples()) : test;
  ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadIdxDims(DataPath(data, data.train_images())));
  shape.example_shape = ExampleShape(dims);
  shape.num_classes = kImageDatasetClasses;
  return shape;
}

}  // namespace

std::vector<std::string> ClassNames(const proto::DataSpec& data, int num_classes) {
  if (data.class_names_size() == num_classes) return {data.class_names().begin(), data.class_names().end()};
  std::vector<std::string> names;
  for (int c = 0; c < num_classes; ++c) names.push_back(std::to_string(c));
  return names;
}

StatusOr<DataShape> ShapeOfData(const proto::DataSpec& data, std::optional<proto::TableData>* table_data) {
  ASSIGN_OR_RETURN(DataShape shape, ReadDataShape(data, table_data));
  RETURN_IF_ERROR(CheckClassNamesCount(data, shape.num_classes));
  return shape;
}

StatusOr<JobShape> PlanJob(const proto::JobSpec& spec) {
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  JobShape shape;
  ASSIGN_OR_RETURN(const DataShape data, ShapeOfData(spec.data(), &shape.table_data));
  shape.train_examples = data.train_examples;
  shape.test_examples = data.test_examples;
  if (shape.train_examples < 1 || shape.test_examples < 1) {
    return InvalidArgumentError("the job needs training and test examples, got " + std::to_string(shape.train_examples) +
                                " and " + std::to_string(shape.test_examples));
  }
  shape.num_classes = data.num_classes;
  shape.class_names = ClassNames(spec.data(), data.num_classes);
  ASSIGN_OR_RETURN(auto model, Model::Create(spec.model(), data.example_shape, data.num_classes));
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
  *map.mutable_spec() = spec;
  map.set_num_workers(spec.cluster().workers());
  map.set_num_keys(shape.num_keys);
  map.set_train_examples(shape.train_examples);
  map.set_test_examples(shape.test_examples);
  LeaseBook plan;  // servers' learning-rate schedules count epochs in these steps (ASP: pushes)
  plan.StartTraining(0, shape.train_examples, spec.data().shards_per_worker() * map.num_workers(), map.num_workers(),
                     spec.consistency() == proto::BSP);
  map.set_steps_per_epoch(plan.StepsPerWorker(spec.batch_size()));
  const int64_t epoch_began = start.step - start.skip_steps;
  map.set_schedule_step_offset(start.epoch * map.steps_per_epoch() - epoch_began);
  for (const proto::TensorMeta& t : shape.tensors) *map.add_tensors() = t;
  if (shape.table_data.has_value()) *map.mutable_table_data() = *shape.table_data;
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
