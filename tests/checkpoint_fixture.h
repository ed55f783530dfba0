// A committed checkpoint written by hand, for tests of what reads one (the
// resume point, the scheduler's pruning of an abandoned timeline).
#ifndef TESSERA_TESTS_CHECKPOINT_FIXTURE_H_
#define TESSERA_TESTS_CHECKPOINT_FIXTURE_H_

#include <string>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "proto/job.pb.h"
#include "scheduler/epoch_loss_ledger.h"
#include "scheduler/job_shape.h"
#include "tests/test_util.h"

namespace tessera {

// A committed checkpoint of the job of `spec` in RUN/checkpoints, cut at
// `step` with cursor (`epoch`, `steps_into_epoch`), keeping
// `loss_before_cut` (by worker rank) when given. Returns its directory.
inline std::string WriteCheckpoint(const std::string& run, const proto::JobSpec& spec, const JobShape& shape, int64_t step,
                            int epoch, int64_t steps_into_epoch, const std::vector<LossSums>& loss_before_cut = {}) {
  const std::string dir = run + "/checkpoints/" + CheckpointName(step);
  EXPECT_OK(MakeDirs(dir + "/server-0"));
  const std::string bytes = "the part's bytes";
  EXPECT_OK(WriteFileAtomic(dir + "/server-0/000001.sst", bytes));
  proto::CheckpointManifest m;
  *m.mutable_spec() = spec;
  m.set_step(step);
  m.mutable_cursor()->set_seed(spec.seed());
  m.mutable_cursor()->set_epoch(epoch);
  m.mutable_cursor()->set_steps_into_epoch(steps_into_epoch);
  for (const proto::TensorMeta& t : shape.tensors) *m.add_tensors() = t;
  m.set_num_keys(shape.num_keys);
  proto::ServerPart* part = m.add_servers();
  part->set_rank(0);
  part->set_dir("server-0");
  proto::KeyRange* range = part->add_ranges();
  range->set_begin(0);
  range->set_end(static_cast<int64_t>(shape.num_keys));
  proto::FileChecksum* file = part->add_files();
  file->set_name("000001.sst");
  file->set_size(bytes.size());
  file->set_sha256(Sha256Hex(bytes.data(), bytes.size()));
  m.set_optimizer("sgd");
  m.set_state_per_param(1);
  for (const LossSums& sums : loss_before_cut) {
    proto::RankLoss* rank = m.mutable_partial_epoch_loss()->add_by_rank();
    rank->set_loss_sum(sums.loss_sum);
    rank->set_examples(sums.examples);
  }
  EXPECT_OK(WriteManifest(dir, m));
  return dir;
}

}  // namespace tessera

#endif  // TESSERA_TESTS_CHECKPOINT_FIXTURE_H_
