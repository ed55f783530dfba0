// Checkpoint manifests and the checkpoint directory layout:
//
//   RUN_DIR/checkpoints/step-000000000940/MANIFEST      binary CheckpointManifest, written last
//   RUN_DIR/checkpoints/step-000000000940/MANIFEST.txt  the same in text format
//   RUN_DIR/checkpoints/step-000000000940/server-0/     server 0's RocksDB
//   RUN_DIR/checkpoints/latest                          "step-000000000940\n"
//
// A checkpoint without its MANIFEST does not exist. Functions only.
#ifndef TESSERA_CORE_CHECKPOINT_MANIFEST_H_
#define TESSERA_CORE_CHECKPOINT_MANIFEST_H_

#include <string>
#include <vector>

#include "core/file_system.h"
#include "core/status.h"
#include "proto/checkpoint.pb.h"

namespace tessera {

// "step-000000000940".
std::string CheckpointName(int64_t step);

// Reads DIR/MANIFEST. NotFound when absent ("not a checkpoint"), DataLoss
// naming the file when it does not parse or has another format_version.
StatusOr<proto::CheckpointManifest> ReadManifest(const std::string& checkpoint_dir);

// Writes MANIFEST.txt then MANIFEST, each atomically; the binary one last, as
// its appearance commits the checkpoint. Unavailable on I/O errors.
Status WriteManifest(const std::string& checkpoint_dir, const proto::CheckpointManifest& manifest,
                     FileSystem* fs = LocalFileSystem());

// Checks every file the manifest lists: present, of its size, of its SHA-256.
// DataLoss naming the first bad file and what is wrong.
Status VerifyCheckpoint(const std::string& checkpoint_dir, const proto::CheckpointManifest& manifest);

// Points RUN/checkpoints/latest at `name` (atomically).
Status UpdateLatest(const std::string& checkpoints_dir, const std::string& name, FileSystem* fs = LocalFileSystem());

// Deletes the committed checkpoints of the lowest steps beyond keep_last, and
// uncommitted leftovers below the newest committed one. (Resume removes the
// checkpoints past its step first, so steps only grow within a run.) The
// checkpoint at step `keep_step` (the job's best epoch's; -1: none) stays
// too, whatever its age: the newest keep_last and it. Best effort; returns
// the first error.
Status PruneCheckpoints(const std::string& checkpoints_dir, int keep_last, int64_t keep_step = -1);

// Deletes every checkpoint (committed or not) in `checkpoints_dir` past
// `step`: resuming from `step` abandons the timeline they belong to. Their
// names go to *removed. Unavailable on the first failure.
Status RemoveCheckpointsAfter(const std::string& checkpoints_dir, int64_t step, std::vector<std::string>* removed);

// Resolves what `tessera resume`, `inspect`, `export` and the scheduler's
// --resume_from are given: a checkpoint directory (holding MANIFEST) is taken
// as it is; a run directory (holding checkpoints/), its checkpoints/ or
// checkpoints/latest gives the run's newest intact checkpoint — the one
// `latest` names first, then older ones, newest first. *note says which was taken and why. NotFound
// when there is none; DataLoss naming the file when a checkpoint named
// directly is corrupt.
StatusOr<std::string> ResolveCheckpoint(const std::string& path, std::string* note);

// The run directory a checkpoint directory belongs to (two levels up).
std::string RunDirOf(const std::string& checkpoint_dir);

}  // namespace tessera

#endif  // TESSERA_CORE_CHECKPOINT_MANIFEST_H_
