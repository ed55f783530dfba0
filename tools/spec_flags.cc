#include "tools/spec_flags.h"

#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/dataset.h"
#include "core/idx_reader.h"
#include "core/image_folder_data.h"
#include "models/model.h"
#include "core/spec.h"
#include "core/libsvm_data.h"
#include "core/table_data.h"
#include "scheduler/job_shape.h"
#include "worker/batch_reader.h"

DEFINE_string(name, "", "job name; overrides the spec's name");
DEFINE_int32(servers, 0, "parameter servers; overrides cluster.servers");
DEFINE_int32(workers, 0, "workers; overrides cluster.workers");
DEFINE_int32(epochs, 0, "passes over the training set; overrides epochs");
DEFINE_uint64(seed, 0, "random seed; overrides seed");
DEFINE_int32(batch_size, 0, "examples per worker per step; overrides batch_size");
DEFINE_double(learning_rate, 0, "overrides optimizer.learning_rate");
DEFINE_string(consistency, "", "bsp, asp or ssp; overrides consistency (ssp with the spec's staleness)");
DEFINE_string(data_dir, "", "directory of the IDX files; overrides data.dir");
DEFINE_int64(max_train_examples, 0, "use only the first N training examples (0: all); overrides data.max_train_examples");
DEFINE_int64(max_test_examples, 0, "use only the first N test examples (0: all); overrides data.max_test_examples");

namespace tessera {

StatusOr<proto::JobSpec> LoadSpecWithOverrides(const std::string& path, const ParsedArgs& args, bool check_data) {
  ASSIGN_OR_RETURN(proto::JobSpec spec, LoadJobSpec(path));
  RETURN_IF_ERROR(ApplySpecOverrides(args, &spec));
  if (check_data) RETURN_IF_ERROR(CheckSpecRunnable(spec, path));
  return spec;
}

Status ApplySpecOverrides(const ParsedArgs& args, proto::JobSpec* spec_out) {
  proto::JobSpec& spec = *spec_out;
  auto given = [&](const char* flag) { return args.set_flags.count(flag) > 0; };
  if (given("name")) spec.set_name(FLAGS_name);
  if (given("servers")) spec.mutable_cluster()->set_servers(FLAGS_servers);
  if (given("workers")) spec.mutable_cluster()->set_workers(FLAGS_workers);
  if (given("epochs")) spec.set_epochs(FLAGS_epochs);
  if (given("seed")) spec.set_seed(FLAGS_seed);
  if (given("batch_size")) spec.set_batch_size(FLAGS_batch_size);
  if (given("learning_rate")) spec.mutable_optimizer()->set_learning_rate(static_cast<float>(FLAGS_learning_rate));
  if (given("consistency")) {
    if (FLAGS_consistency == "bsp" || FLAGS_consistency == "BSP") {
      spec.set_consistency(proto::BSP);
    } else if (FLAGS_consistency == "asp" || FLAGS_consistency == "ASP") {
      spec.set_consistency(proto::ASP);
    } else if (FLAGS_consistency == "ssp" || FLAGS_consistency == "SSP") {
      spec.set_consistency(proto::SSP);  // the spec's staleness is its bound
    } else {
      return InvalidArgumentError("--consistency must be bsp, asp or ssp, got '" + FLAGS_consistency + "'");
    }
  }
  if (given("data_dir")) spec.mutable_data()->set_dir(FLAGS_data_dir);
  if (given("max_train_examples")) spec.mutable_data()->set_max_train_examples(FLAGS_max_train_examples);
  if (given("max_test_examples")) spec.mutable_data()->set_max_test_examples(FLAGS_max_test_examples);
  return OkStatus();
}

namespace {

// The records data.table.skip_bad_records (or data.libsvm's) passes over: how many, and the first ones.
void PrintBadRecords(const BadRecords& bad, const char* field) {
  if (bad.count == 0) return;
  std::cerr << "passing over " << bad.count << " bad record" << (bad.count == 1 ? "" : "s")
            << " (" << field << ")" << (bad.count > static_cast<int64_t>(bad.first.size()) ? "; the first:" : ":")
            << "\n";
  for (const std::string& message : bad.first) std::cerr << "  " << message << "\n";
  std::cerr << std::flush;
}

// The bytes of a table's files (those that exist; the scan reports the others).
uint64_t TableBytes(const proto::DataSpec& data) {
  uint64_t bytes = 0;
  for (const Split split : {Split::kTraining, Split::kValidation, Split::kTest}) {
    for (const std::string& path : TableFiles(data, split)) {
      std::error_code error;
      const uintmax_t size = std::filesystem::file_size(path, error);
      if (!error) bytes += size;
    }
  }
  return bytes;
}

// Reads and checks every record of a table: a line before when it will take
// a while, and one after with what was found; then the task, in one line.
StatusOr<DataAndTask> CheckTable(const proto::JobSpec& spec) {
  const proto::DataSpec& data = spec.data();
  const uint64_t megabytes = TableBytes(data) >> 20;
  if (megabytes >= 256) std::cerr << "checking every record of " << megabytes << " MiB of data files..." << std::endl;
  const auto start = std::chrono::steady_clock::now();
  DataLayout layout;
  ASSIGN_OR_RETURN(DataAndTask checked, ShapeOfJobData(spec, &layout));
  const DataShape& shape = checked.data;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[256];
  std::snprintf(line, sizeof(line), "checked %lld training, %lld validation and %lld test records (%llu MiB) in %.1f s",
                static_cast<long long>(shape.train_examples), static_cast<long long>(shape.validation_examples),
                static_cast<long long>(shape.test_examples),
                static_cast<unsigned long long>(megabytes), seconds);
  std::cerr << line << std::endl;
  PrintBadRecords(shape.bad_records, IsLibsvmFormat(data)                          ? "data.libsvm.skip_bad_records"
                                     : data.format() == proto::DataSpec::CRITEO ? "data.criteo.skip_bad_records"
                                                                                : "data.table.skip_bad_records");
  std::cerr << checked.task.description << std::endl;
  return checked;
}

// Both folders listed, and every image in them decoded once, so that a bad
// file (a truncated or corrupt PNG, say) is one line naming it now rather
// than a worker failing once training has started; then the model must fit
// the images' shape and classes.
Status CheckImageFolderRunnable(const proto::JobSpec& spec) {
  ASSIGN_OR_RETURN(const ImageFolderSplits splits, ListImageFolders(spec.data()));
  RETURN_IF_ERROR(CheckImageFolder(splits.train).status());
  RETURN_IF_ERROR(CheckImageFolder(splits.test).status());
  const int classes = static_cast<int>(splits.train.class_names.size());
  RETURN_IF_ERROR(ChooseTask(spec, nullptr, classes).status());  // image labels are classes
  return Model::Create(spec.model(), ImageExampleShape(spec.data().image()), classes).status();
}

}  // namespace

Status CheckSpecRunnable(const proto::JobSpec& spec, const std::string& source) {
  RETURN_IF_ERROR(ValidateJobSpec(spec).WithContext(source));
  const proto::DataSpec& d = spec.data();
  if (IsImageFolderFormat(d)) return CheckImageFolderRunnable(spec);
  if (IsTableFormat(d) || IsLibsvmFormat(d)) {
    // Every record is read and checked here, as the scheduler will again to plan the job.
    ASSIGN_OR_RETURN(const DataAndTask checked, CheckTable(spec));
    RETURN_IF_ERROR(Model::Create(WithTask(spec, checked.task).model(), checked.data.example_shape,
                                  checked.data.num_classes, Device::kCpu, checked.data.categorical_rows,
                                  checked.data.sparse_features)
                        .status());
    return OkStatus();
  }
  // data.class_names against the classes, and a loss the data can take (IDX labels are classes).
  DataLayout layout;
  RETURN_IF_ERROR(ShapeOfJobData(spec, &layout).status());
  RETURN_IF_ERROR(CountExamples(DataPath(d, d.train_images()), DataPath(d, d.train_labels())).status());
  RETURN_IF_ERROR(CountExamples(DataPath(d, d.test_images()), DataPath(d, d.test_labels())).status());
  // The model must fit the data's shape; the scheduler checks again, but a
  // mistake is cheaper to report here, before any process starts.
  ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadIdxDims(DataPath(d, d.train_images())));
  ASSIGN_OR_RETURN(auto model, Model::Create(spec.model(), ExampleShape(dims), kImageDatasetClasses));
  // Every byte the workers will read is read once here: a damaged file (a
  // truncated download, say) is one line now rather than every worker
  // failing the same way once training has started.
  ASSIGN_OR_RETURN(ImageDataset train, LoadImageDataset(DataPath(d, d.train_images()), DataPath(d, d.train_labels()),
                                                        d.max_train_examples()));
  ASSIGN_OR_RETURN(ImageDataset test, LoadImageDataset(DataPath(d, d.test_images()), DataPath(d, d.test_labels()),
                                                       d.max_test_examples()));
  if (spec.model().layer(0).has_embedding()) {
    // Ids must be valid for every example.
    RETURN_IF_ERROR(CheckDatasetInputs(train, d.mean(), d.std(), *model, "training set"));
    RETURN_IF_ERROR(CheckDatasetInputs(test, d.mean(), d.std(), *model, "test set"));
  }
  return OkStatus();
}

}  // namespace tessera
