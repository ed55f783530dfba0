// Fine-tuning a pruned model for `tessera export --fine-tune-epochs E`,
// through the normal training cluster: the parameters become the step-0
// checkpoint of a temporary run directory, and the local-mode launcher (the
// one `tessera train` and `tessera resume` run: a scheduler, servers and
// workers as child processes, progress shown, rollback on a lost process)
// resumes it for E epochs. The final checkpoint's parameters come back; the
// directory is removed whatever happens, Ctrl-C included.
#ifndef TESSERA_TOOLS_FINE_TUNE_H_
#define TESSERA_TOOLS_FINE_TUNE_H_

#include <string>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "tools/command.h"
#include "tools/progress_view.h"

namespace tessera {

// Writes `params` (the model of spec.model(), whose tensors are `tensors`)
// into RUN_DIR/checkpoints/ as a committed checkpoint at step 0 (epoch 0,
// zero optimizer state, one server part), the format the servers write
// (docs/FORMATS.md), and points `latest` at it. Returns its directory.
StatusOr<std::string> WriteStartCheckpoint(const std::string& run_dir, const proto::JobSpec& spec,
                                           const std::vector<TensorInfo>& tensors, const std::vector<float>& params);

struct FineTuneOptions {
  int epochs = 1;
  // Weights that are 0 stay 0 (OptimizerSpec.freeze_zero_weights): unstructured pruning's mask.
  bool freeze_zero_weights = false;
  // As `tessera train`'s flags.
  int threads = 0;
  ProgressMode progress = ProgressMode::kPlain;
  int max_restarts = 3;
};

// Trains `params` for options.epochs epochs with `spec` (its model, data,
// cluster and optimizer; epochs, checkpoints and evaluation are set here) in a
// temporary run directory. Returns the launcher's exit code (0; 1 when the
// job failed; 2 for a spec that cannot run; 130 when interrupted), messages
// prefixed "tessera COMMAND:"; on 0, *tuned holds the final parameters.
int FineTune(const Command& self, proto::JobSpec spec, const std::vector<TensorInfo>& tensors,
             const std::vector<float>& params, const FineTuneOptions& options, std::vector<float>* tuned);

}  // namespace tessera

#endif  // TESSERA_TOOLS_FINE_TUNE_H_
