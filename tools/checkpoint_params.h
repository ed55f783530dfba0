// Reading a checkpoint's parameters back, verified: what `tessera inspect`
// and `tessera export` share.
#ifndef TESSERA_TOOLS_CHECKPOINT_PARAMS_H_
#define TESSERA_TOOLS_CHECKPOINT_PARAMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/checkpoint.pb.h"

namespace tessera {

// Every parameter and state float of the checkpoint at `dir` (whose manifest
// is `m`) in key order, read from its server parts; *slices counts the
// records read. Checks the manifest against its files before allocating, that
// the tensors tile the keys, and that every key is stored exactly once at the
// manifest's step. DataLoss naming the problem otherwise. Does not check the
// files' checksums (VerifyCheckpoint, which ResolveCheckpoint runs) nor
// params_sha256 (VerifyParamsDigest).
Status AssembleCheckpoint(const std::string& dir, const proto::CheckpointManifest& m, std::vector<float>* params,
                          std::vector<float>* state, int64_t* slices);

// The parameters' digest (docs/FORMATS.md), compared with the manifest's
// params_sha256 when it has one: DataLoss when they differ.
StatusOr<std::string> VerifyParamsDigest(const std::string& dir, const proto::CheckpointManifest& m,
                                         const std::vector<float>& params);

// A checkpoint read back and verified end to end.
struct LoadedCheckpoint {
  std::string dir;   // the checkpoint directory
  std::string note;  // which checkpoint ResolveCheckpoint took, and why
  proto::CheckpointManifest manifest;
  std::vector<float> params, state;  // key order
  int64_t slices = 0;
  std::string params_sha256;
};

// `path` (a checkpoint or a run directory) through ResolveCheckpoint (every
// file's checksum), ReadManifest, AssembleCheckpoint and VerifyParamsDigest;
// the first error, naming the file, otherwise.
StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path);

// The checkpoint `tessera export RUN_DIR --best` takes: the best_checkpoint
// that RUN_DIR/summary.json records (the checkpoint cut at the end of the
// best epoch by the validation metric). *note says which epoch it is.
// InvalidArgument, one line saying why, when the run has none: no
// summary.json (the run did not finish), no validation split, or no
// checkpoint cut at that epoch's end.
StatusOr<std::string> BestCheckpointOfRun(const std::string& run_dir, std::string* note);

}  // namespace tessera

#endif  // TESSERA_TOOLS_CHECKPOINT_PARAMS_H_
