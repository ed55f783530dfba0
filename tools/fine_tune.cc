#include "tools/fine_tune.h"

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "models/model.h"
#include "server/optimizer.h"
#include "server/slice_store.h"
#include "tools/checkpoint_params.h"
#include "tools/local_job.h"
#include "tools/signals.h"
#include "tools/spec_flags.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Removes the directory when it goes out of scope.
class TempRunDir {
 public:
  explicit TempRunDir(std::string path) : path_(std::move(path)) {}
  ~TempRunDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

StatusOr<std::string> WriteStartCheckpoint(const std::string& run_dir, const proto::JobSpec& spec,
                                           const std::vector<TensorInfo>& tensors, const std::vector<float>& params) {
  uint64_t num_keys = 0;
  for (const TensorInfo& t : tensors) num_keys = std::max(num_keys, t.offset + t.size);
  if (num_keys != params.size()) {
    return InvalidArgumentError("the tensors hold " + std::to_string(num_keys) + " parameters, got " +
                                std::to_string(params.size()));
  }
  // Only the state's size is needed; any clock the schedule accepts will do.
  ASSIGN_OR_RETURN(auto optimizer, CreateOptimizer(spec.optimizer(), ScheduleClock{1, spec.epochs(), 0}));
  const int per = optimizer->state_per_param();
  const std::string checkpoints = run_dir + "/checkpoints";
  const std::string dir = checkpoints + "/" + CheckpointName(0);
  RETURN_IF_ERROR(MakeDirs(checkpoints));
  std::error_code ec;
  fs::remove_all(dir, ec);  // an unfinished attempt (no MANIFEST), as the scheduler would delete it

  // One part, sliced as a one-server job would be; servers re-split on load.
  const std::vector<KeyRange> ranges = PlanServerSlices(tensors, 1)[0];
  std::vector<SliceSnapshot> slices;
  for (const KeyRange& r : ranges) {
    slices.push_back({r, 0, std::make_shared<const std::vector<float>>(params.begin() + r.begin, params.begin() + r.end),
                      std::vector<float>(r.size() * per, 0.0f)});
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  ASSIGN_OR_RETURN(StoreWriteResult written, WriteSliceStore(dir + "/server-0", slices, per));

  proto::CheckpointManifest m;
  *m.mutable_spec() = spec;
  m.set_step(0);
  m.mutable_cursor()->set_seed(spec.seed());
  m.mutable_cursor()->set_epoch(0);
  m.mutable_cursor()->set_steps_into_epoch(0);
  for (const TensorInfo& t : tensors) {
    proto::TensorMeta* meta = m.add_tensors();
    meta->set_name(t.name);
    for (int64_t d : t.shape) meta->add_shape(d);
    meta->set_offset(t.offset);
    meta->set_size(t.size);
    meta->set_init_bound(t.init_bound);
    meta->set_init_value(t.init_value);
    meta->set_trainable(t.trainable);
  }
  m.set_num_keys(num_keys);
  proto::ServerPart* part = m.add_servers();
  part->set_rank(0);
  part->set_dir("server-0");
  for (const KeyRange& r : ranges) {
    proto::KeyRange* out = part->add_ranges();
    out->set_begin(r.begin);
    out->set_end(r.end);
  }
  for (const proto::FileChecksum& f : written.files) *part->add_files() = f;
  m.set_params_sha256(ParamsSha256(params.data(), params.size()));
  m.set_optimizer(proto::OptimizerSpec::Type_Name(spec.optimizer().type()));
  m.set_state_per_param(per);
  m.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  RETURN_IF_ERROR(WriteManifest(dir, m));
  RETURN_IF_ERROR(UpdateLatest(checkpoints, CheckpointName(0)));
  return dir;
}

int FineTune(const Command& self, proto::JobSpec spec, const std::vector<TensorInfo>& tensors,
             const std::vector<float>& params, const FineTuneOptions& options, std::vector<float>* tuned) {
  // From here a Ctrl-C only sets the stop flag, which the launcher heeds, so
  // the directory below is always removed.
  InstallStopSignals();
  spec.set_epochs(options.epochs);
  spec.mutable_optimizer()->set_freeze_zero_weights(options.freeze_zero_weights);
  spec.set_eval_every_epoch(false);  // the export evaluates the result itself
  // Exactly the epochs asked for, exported from the last: no early stopping
  // (which needs a validation after every epoch).
  spec.mutable_early_stopping()->set_patience(0);
  proto::CheckpointSpec* k = spec.mutable_checkpoint();
  k->set_enabled(true);
  k->set_every_epochs(0);  // at the end, the parameters to export (and inside epochs as the spec says)
  if (Status s = CheckSpecRunnable(spec, "the fine-tuning job"); !s.ok()) return UsageError(self, s.message());

  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%d-%08x", static_cast<int>(getpid()), static_cast<unsigned>(rd()));
  std::error_code ec;
  const fs::path base = fs::temp_directory_path(ec);
  TempRunDir run((ec ? fs::path("/tmp") : base) / (std::string("tessera-fine-tune-") + suffix));
  if (Status s = MakeDirs(run.path() + "/logs"); !s.ok()) return UsageError(self, s.message());
  if (Status s = WriteFileAtomic(run.path() + "/spec.pbtxt", JobSpecToText(spec)); !s.ok()) {
    return UsageError(self, s.message());
  }
  auto start = WriteStartCheckpoint(run.path(), spec, tensors, params);
  if (!start.ok()) return UsageError(self, "writing the fine-tuning job's start: " + start.status().message());
  if (StopSignalCount() > 0) {
    std::cerr << "tessera " << self.name << ": interrupted" << std::endl;
    return kExitInterrupted;
  }

  LocalJobOptions job;
  job.run_dir = run.path();
  job.resume_from = *start;
  job.threads = options.threads;
  job.progress = options.progress;
  job.max_restarts = options.max_restarts;
  const int code = RunLocalJob(self, spec, job);
  if (code != kExitOk) return code;
  if (StopSignalCount() > 0) {
    std::cerr << "tessera " << self.name << ": interrupted" << std::endl;
    return kExitInterrupted;
  }
  auto final_checkpoint = LoadCheckpoint(run.path());
  if (!final_checkpoint.ok()) {
    std::cerr << "tessera " << self.name << ": the fine-tuning job left no final checkpoint: "
              << final_checkpoint.status().message() << std::endl;
    return kExitFailure;
  }
  if (final_checkpoint->manifest.cursor().epoch() != options.epochs || final_checkpoint->params.size() != params.size()) {
    std::cerr << "tessera " << self.name << ": the fine-tuning job's last checkpoint (" << final_checkpoint->dir
              << ") is not after its last epoch" << std::endl;
    return kExitFailure;
  }
  *tuned = std::move(final_checkpoint->params);
  return kExitOk;
}

}  // namespace tessera
