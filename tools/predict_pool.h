// The parent side of `tessera predict --workers N`: the input cut into N
// contiguous ranges of whole batches, one `tessera predict-worker` child
// process per range (ChildProcess: own process group, dies with the parent),
// each writing its CSV rows to a part file; the parent watches them all and
// stops the others as soon as one fails.
#ifndef TESSERA_TOOLS_PREDICT_POOL_H_
#define TESSERA_TOOLS_PREDICT_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

struct PredictWorkerRange {
  int64_t begin = 0, end = 0;  // images [begin, end)
};

// Cuts [0, count) into at most `workers` contiguous, non-empty ranges of
// whole batches (each begins at a multiple of batch_size, so every image is
// in the same batch whatever the number of workers, and so gets the same
// bits), their batch counts within one of each other.
std::vector<PredictWorkerRange> SplitPredictRanges(int64_t count, int64_t batch_size, int workers);

struct PredictPoolOptions {
  std::string executable;   // this binary
  std::string version_dir;  // one version, resolved by the parent
  std::string input;
  int64_t batch_size = 64;
  int threads = 1;  // compute threads of each worker
  std::string device = "cpu";  // each worker's --device
  // part-K.csv and worker-K.log of worker K go here.
  std::string temp_dir;
  // Called about every 100 ms with the images all workers have done.
  std::function<void(int64_t done)> on_progress;
  const std::atomic<bool>* stop = nullptr;  // SIGINT/SIGTERM
  // Tests only: each worker's --test-worker-fault (cmd_predict.cc), which
  // fails or stalls the worker whose range holds a given image. Default
  // empty: none.
  std::string test_worker_fault;
};

// Runs one worker per range and waits for all of them. Returns the part
// files in range order once every worker has exited 0. When one fails (exit
// code other than 0, or killed), the others are stopped (SIGTERM, SIGKILL
// after a second) and reaped before it returns Internal: "worker K of N
// (images B..E) exited with code C: LAST LINE OF ITS LOG", or
// InvalidArgument with that line when the worker exited 2 (an input it
// could not take, an image that does not decode). Aborted, with
// every worker stopped, once *stop is set.
StatusOr<std::vector<std::string>> RunPredictWorkers(const PredictPoolOptions& options,
                                                     const std::vector<PredictWorkerRange>& ranges);

}  // namespace tessera

#endif  // TESSERA_TOOLS_PREDICT_POOL_H_
