// `tessera resume RUN_DIR_OR_CHECKPOINT`: continues a job from a checkpoint
// in local mode, in the same run directory. Given a run directory it takes
// the newest intact checkpoint and says which.
#include <filesystem>
#include <iostream>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "scheduler/table_vocabulary.h"
#include "tools/command.h"
#include "tools/local_job.h"
#include "tools/role_flags.h"
#include "tools/spec_flags.h"

namespace tessera {

int RunResume(const ParsedArgs& args) {
  const Command& self = FindCommand("resume");
  if (args.positional.size() != 1) {
    return UsageError(self, "expected one run directory or checkpoint (tessera resume RUN_DIR)");
  }
  std::string note;
  auto checkpoint = ResolveCheckpoint(args.positional[0], &note);
  if (!checkpoint.ok()) return UsageError(self, checkpoint.status().message());
  auto manifest = ReadManifest(*checkpoint);
  if (!manifest.ok()) return UsageError(self, manifest.status().message());

  proto::JobSpec spec = manifest->spec();
  if (Status s = ApplySpecOverrides(args, &spec); !s.ok()) return UsageError(self, s.message());
  if (Status s = CheckSpecRunnable(spec, *checkpoint + "/MANIFEST"); !s.ok()) return UsageError(self, s.message());
  const bool finished = FileExists(RunDirOf(*checkpoint) + "/summary.json");
  if (manifest->cursor().epoch() > spec.epochs() || (manifest->cursor().epoch() == spec.epochs() && finished)) {
    return UsageError(self, "the checkpoint is after epoch " + std::to_string(manifest->cursor().epoch()) + " of " +
                                std::to_string(spec.epochs()) + ": nothing left to train; pass --epochs N with N > " +
                                std::to_string(manifest->cursor().epoch()));
  }
  const proto::JobSpec& saved = manifest->spec();
  if (manifest->cursor().steps_into_epoch() > 0 &&
      (spec.cluster().workers() != saved.cluster().workers() || spec.batch_size() != saved.batch_size())) {
    return UsageError(self, "the checkpoint was cut inside epoch " + std::to_string(manifest->cursor().epoch() + 1) +
                                ", whose remaining batches follow the data plan of " +
                                std::to_string(saved.cluster().workers()) +
                                " workers: resume it with that many (or from an epoch-end checkpoint)");
  }
  if (FLAGS_max_restarts < 0) {
    return UsageError(self, "--max-restarts must be >= 0, got " + std::to_string(FLAGS_max_restarts));
  }
  if (FLAGS_threads < 0) return UsageError(self, "--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  auto mode = ParseProgressMode(FLAGS_progress);
  if (!mode.ok()) return UsageError(self, mode.status().message());
  if (!FLAGS_force) {
    if (Status fits = CheckLocalWorkersFit(spec); !fits.ok()) return UsageError(self, fits.message());
  }

  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(*checkpoint, ec).lexically_normal().string();
  if (std::filesystem::path(absolute).parent_path().filename() != "checkpoints") {
    return UsageError(self, *checkpoint + " is not inside a run directory's checkpoints/; resume the run directory "
                                          "it belongs to");
  }
  const std::string run_dir = RunDirOf(absolute);
  if (HasVocabularyColumns(spec.data())) {
    // The scheduler reads them again; a missing or damaged file is one line now, before any process starts.
    if (Status s = ReadTableVocabularies(run_dir).status(); !s.ok()) return UsageError(self, s.message());
  }
  if (Status s = MakeDirs(run_dir + "/logs"); !s.ok()) return UsageError(self, s.message());
  if (Status s = WriteFileAtomic(run_dir + "/spec.pbtxt", JobSpecToText(spec)); !s.ok()) {
    return UsageError(self, s.message());
  }
  if (manifest->cursor().epoch() == spec.epochs()) {
    std::cout << "resuming from " << note << ": training is complete, running the final evaluation" << std::endl;
  } else {
    std::cout << "resuming from " << note << ": epoch " << manifest->cursor().epoch() + 1 << " of " << spec.epochs()
              << std::endl;
  }
  LocalJobOptions options;
  options.run_dir = run_dir;
  options.resume_from = absolute;
  options.threads = FLAGS_threads;
  options.max_restarts = FLAGS_max_restarts;
  options.curve = FLAGS_curve;
  options.progress = *mode;
  return RunLocalJob(self, spec, options);
}

}  // namespace tessera
