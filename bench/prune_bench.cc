// prune_bench: CPU inference time of a checkpoint's model against its
// structurally pruned version (export/pruning.h: each hidden layer loses
// --sparsity of its output channels or neurons, so the layers really shrink),
// at one batch size, in evaluation mode (Model::Infer, what `tessera serve`
// runs). The target of structured 50% on fmnist-cnn: >= 1.6x faster at
// batch 64.
//
//   build/bench/prune_bench --checkpoint RUN_DIR --sparsity 0.5 --batch 64 --threads 1
//
// Without --checkpoint it times freshly initialized parameters of --spec's
// model (the pruned shapes, hence the time, depend little on the values).
#include <cblas.h>
#include <gflags/gflags.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "core/spec.h"
#include "export/pruning.h"
#include "models/model.h"
#include "tools/checkpoint_params.h"

DEFINE_string(checkpoint, "", "checkpoint or run directory whose model to time (default: --spec, initialized)");
DEFINE_string(spec, "examples/fmnist-cnn.pbtxt", "job spec whose model to time when there is no --checkpoint");
DEFINE_double(sparsity, 0.5, "structured pruning: the fraction of each hidden layer's channels or neurons removed");
DEFINE_int32(batch, 64, "examples per inference pass");
DEFINE_int32(rounds, 20, "timed rounds of 10 passes each (after 10 warm-up passes); the fastest round counts");
DEFINE_int32(threads, 1, "OpenBLAS and oneDNN threads");

namespace {

// Seconds per pass: the fastest of the rounds (robust against other
// processes on a shared machine), and the mean over all.
struct Timing {
  double best = 1e30, mean = 0;
};

Timing TimeInfer(tessera::Model* model, const std::vector<float>& x, int64_t batch) {
  for (int i = 0; i < 10; ++i) model->Infer(x.data(), batch);
  Timing t;
  double total = 0;
  for (int r = 0; r < FLAGS_rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) model->Infer(x.data(), batch);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 10;
    t.best = std::min(t.best, s);
    total += s;
  }
  t.mean = total / std::max(1, FLAGS_rounds);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  openblas_set_num_threads(FLAGS_threads);
  omp_set_num_threads(FLAGS_threads);
  const tessera::Shape image = {1, 28, 28};
  tessera::proto::ModelSpec spec;
  std::vector<float> params;
  if (!FLAGS_checkpoint.empty()) {
    auto loaded = tessera::LoadCheckpoint(FLAGS_checkpoint);
    if (!loaded.ok()) {
      std::fprintf(stderr, "prune_bench: %s\n", loaded.status().ToString().c_str());
      return 2;
    }
    spec = loaded->manifest.spec().model();
    params = std::move(loaded->params);
  } else {
    auto job = tessera::LoadJobSpec(FLAGS_spec);
    if (!job.ok()) {
      std::fprintf(stderr, "prune_bench: %s\n", job.status().ToString().c_str());
      return 2;
    }
    spec = job->model();
  }
  auto original = tessera::Model::Create(spec, image, 10);
  if (!original.ok()) {
    std::fprintf(stderr, "prune_bench: %s\n", original.status().ToString().c_str());
    return 2;
  }
  if (params.empty()) {
    params.resize((*original)->num_keys());
    tessera::InitializeParameters((*original)->tensors(), 1, params.data());
  }
  std::copy(params.begin(), params.end(), (*original)->params());
  auto pruned = tessera::PruneStructured(spec, image, 10, params, FLAGS_sparsity);
  if (!pruned.ok()) {
    std::fprintf(stderr, "prune_bench: %s\n", pruned.status().ToString().c_str());
    return 2;
  }
  auto smaller = tessera::Model::Create(pruned->spec, image, 10);
  if (!smaller.ok()) {
    std::fprintf(stderr, "prune_bench: %s\n", smaller.status().ToString().c_str());
    return 1;
  }
  std::copy(pruned->params.begin(), pruned->params.end(), (*smaller)->params());

  const int64_t batch = FLAGS_batch;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(batch * 784);
  for (float& v : x) v = normal(rng);
  // Alternate, so a slow moment of the machine hits both alike.
  Timing a, b;
  for (int half = 0; half < 2; ++half) {
    const Timing ta = TimeInfer(original->get(), x, batch), tb = TimeInfer(smaller->get(), x, batch);
    a.best = std::min(a.best, ta.best), b.best = std::min(b.best, tb.best);
    a.mean += ta.mean / 2, b.mean += tb.mean / 2;
  }
  std::printf("model: %llu parameters; structured %.2f: %llu parameters (%.1f%%)\n",
              static_cast<unsigned long long>(pruned->params_before), FLAGS_sparsity,
              static_cast<unsigned long long>(pruned->params_after),
              100.0 * pruned->params_after / pruned->params_before);
  std::printf("batch %lld, %d thread(s), CPU inference (Model::Infer), ms per batch: fastest round (mean)\n",
              static_cast<long long>(batch), FLAGS_threads);
  std::printf("  original  %8.3f (%.3f)\n", a.best * 1e3, a.mean * 1e3);
  std::printf("  pruned    %8.3f (%.3f)\n", b.best * 1e3, b.mean * 1e3);
  std::printf("speedup %.2fx (fastest rounds), %.2fx (means)\n", a.best / b.best, a.mean / b.mean);
  return 0;
}
