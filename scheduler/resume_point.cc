#include "scheduler/resume_point.h"

#include <algorithm>
#include <filesystem>

#include <glog/logging.h>

#include "core/checkpoint_manifest.h"
#include "core/consistency.h"
#include "core/spec.h"

namespace tessera {
namespace {

// The loss sums a cut inside an epoch kept, one per worker it was cut with.
StatusOr<std::vector<LossSums>> LossBeforeCut(const proto::CheckpointManifest& m, const std::string& dir) {
  std::vector<LossSums> sums;
  if (m.cursor().steps_into_epoch() == 0 || !m.has_partial_epoch_loss()) return sums;
  const proto::PartialEpochLoss& partial = m.partial_epoch_loss();
  if (partial.by_rank_size() != m.spec().cluster().workers()) {
    return DataLossError("checkpoint " + dir + " holds the loss sums of " + std::to_string(partial.by_rank_size()) +
                         " workers; it was cut with " + std::to_string(m.spec().cluster().workers()));
  }
  for (const proto::RankLoss& rank : partial.by_rank()) sums.push_back({rank.loss_sum(), rank.examples()});
  return sums;
}

}  // namespace

StatusOr<ResumePoint> LoadResumePoint(const std::string& checkpoint, const proto::JobSpec& spec,
                                      const JobShape& shape) {
  // Servers open the parts by this path: make it absolute, as their working directories may differ.
  std::error_code ec;
  const std::string dir = std::filesystem::absolute(checkpoint, ec).lexically_normal().string();
  ASSIGN_OR_RETURN(proto::CheckpointManifest m, ReadManifest(dir));
  RETURN_IF_ERROR(VerifyCheckpoint(dir, m));
  RETURN_IF_ERROR(CheckSameModel(shape, m, dir));
  if (m.cursor().seed() != spec.seed()) {
    return InvalidArgumentError("checkpoint " + dir + " was trained with seed " + std::to_string(m.cursor().seed()) +
                                "; the spec says " + std::to_string(spec.seed()));
  }
  if (m.spec().optimizer().type() != spec.optimizer().type()) {
    return InvalidArgumentError("checkpoint " + dir + " holds " + m.optimizer() + " state; the spec asks for " +
                                proto::OptimizerSpec::Type_Name(spec.optimizer().type()));
  }
  const proto::DataSpec& was = m.spec().data();
  if (was.validation_fraction() != spec.data().validation_fraction() ||
      !std::equal(was.validation_files().begin(), was.validation_files().end(),
                  spec.data().validation_files().begin(), spec.data().validation_files().end())) {
    // Another split trains on other examples.
    return InvalidArgumentError("checkpoint " + dir + " was trained with another validation split "
                                "(data.validation_fraction, data.validation_files) than the spec's");
  }
  if (m.cursor().steps_into_epoch() != 0 &&
      (!IsSynchronous(spec) || m.spec().cluster().workers() != spec.cluster().workers() ||
       m.spec().batch_size() != spec.batch_size())) {
    // The rest of that epoch is defined by the BSP data plan of the same workers and batch.
    return InvalidArgumentError("checkpoint " + dir + " was cut inside epoch " +
                                std::to_string(m.cursor().epoch() + 1) + "; resume it under BSP with its " +
                                std::to_string(m.spec().cluster().workers()) + " workers and batch size " +
                                std::to_string(m.spec().batch_size()) + " (or from an epoch-end checkpoint)");
  }
  ResumePoint point;
  point.start_epoch = m.cursor().epoch();
  point.skip_steps = m.cursor().steps_into_epoch();
  if (point.start_epoch > spec.epochs() || (point.start_epoch == spec.epochs() && point.skip_steps > 0)) {
    return InvalidArgumentError("checkpoint " + dir + " is after epoch " + std::to_string(point.start_epoch) + " of " +
                                std::to_string(spec.epochs()) + ": resume with --epochs > " +
                                std::to_string(point.start_epoch));
  }
  // Training was complete (the job was lost during its final evaluation):
  // the resumed job only evaluates.
  point.evaluate_only = point.start_epoch == spec.epochs();
  point.step = m.step();
  ASSIGN_OR_RETURN(point.loss_before_cut, LossBeforeCut(m, dir));
  if (point.skip_steps > 0 && point.loss_before_cut.empty()) {
    LOG(WARNING) << "checkpoint " << dir << " keeps no loss sums of epoch " << point.start_epoch + 1
                 << " before its cut (written before they were kept): that epoch's train_loss covers the steps "
                    "after it only";
  }
  point.restore.set_dir(dir);
  point.restore.set_step(m.step());
  point.restore.set_state_per_param(m.state_per_param());
  for (const proto::ServerPart& part : m.servers()) {
    proto::RestorePart* out = point.restore.add_parts();
    out->set_dir(part.dir());
    *out->mutable_ranges() = part.ranges();
  }
  return point;
}

NextPhase FirstPhaseOfResume(const ResumePoint& point, const proto::JobSpec& spec, std::optional<int> validated_epochs,
                             bool should_stop) {
  const int trained = point.start_epoch;  // epochs done
  if (HasValidationSplit(spec.data()) && point.skip_steps == 0 && trained >= 1) {
    const bool validation_due = spec.eval_every_epoch() || trained == spec.epochs();
    if (validation_due && validated_epochs.has_value() && *validated_epochs < trained) {
      return NextPhase::Validation(trained - 1);
    }
    if (should_stop) return NextPhase::Evaluation(trained - 1);
  }
  if (point.evaluate_only) return NextPhase::Evaluation(spec.epochs() - 1);
  return NextPhase::Training(point.start_epoch, point.skip_steps);
}

}  // namespace tessera
