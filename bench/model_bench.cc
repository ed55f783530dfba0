// model_bench: one worker's compute alone — forward + backward of a job
// spec's model on random batches, single process, no communication — with
// the time per layer. It shows where a training step's compute goes; compare
// bench/torch_reference.py --mode speed for the same model.
//
//   build/bench/model_bench --spec examples/fmnist-cnn.pbtxt --batch 64 --steps 50 --threads 1
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <gflags/gflags.h>

#include "core/spec.h"
#include "models/model.h"

DEFINE_string(spec, "examples/fmnist-cnn.pbtxt", "job spec whose model to time");
DEFINE_int32(batch, 64, "examples per step");
DEFINE_int32(steps, 50, "timed steps, in rounds of 5 (after 5 warm-up steps)");
DEFINE_int32(threads, 1, "OpenBLAS and oneDNN threads");

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  openblas_set_num_threads(FLAGS_threads);
  omp_set_num_threads(FLAGS_threads);
  auto spec = tessera::LoadJobSpec(FLAGS_spec);
  if (!spec.ok()) {
    std::fprintf(stderr, "model_bench: %s\n", spec.status().ToString().c_str());
    return 2;
  }
  auto model = tessera::Model::Create(spec->model(), tessera::Shape{1, 28, 28}, 10);
  if (!model.ok()) {
    std::fprintf(stderr, "model_bench: %s\n", model.status().ToString().c_str());
    return 2;
  }
  tessera::Model& m = **model;
  tessera::InitializeParameters(m.tensors(), 1, m.params());
  const int64_t batch = FLAGS_batch;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(batch * m.input_features());
  for (float& v : x) v = normal(rng);
  std::vector<float> labels(batch);
  for (float& l : labels) l = static_cast<float>(rng() % 10);

  for (int i = 0; i < 5; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
  // Rounds of 5 steps; each layer's figure is its fastest round, which is
  // robust against other processes on a shared machine (the mean is printed too).
  m.EnableProfiling();
  const int rounds = std::max(1, FLAGS_steps / 5);
  std::vector<tessera::LayerProfile> best, before = m.profile();
  double best_step = 1e30, total_seconds = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) m.TrainBatch(x.data(), labels.data(), batch, r * 5 + i);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 5;
    total_seconds += seconds * 5;
    best_step = std::min(best_step, seconds);
    const std::vector<tessera::LayerProfile>& now = m.profile();
    if (best.empty()) best = now;
    for (size_t l = 0; l < now.size(); ++l) {
      const double f = (now[l].forward_seconds - before[l].forward_seconds) / 5;
      const double b = (now[l].backward_seconds - before[l].backward_seconds) / 5;
      if (r == 0 || f < best[l].forward_seconds) best[l].forward_seconds = f;
      if (r == 0 || b < best[l].backward_seconds) best[l].backward_seconds = b;
    }
    before = now;
  }
  const int steps = rounds * 5;
  std::printf("%s: batch %lld, %d threads, %d steps: mean %.2f ms/step (%.0f samples/s), best round %.2f ms/step "
              "(%.0f samples/s)\n",
              FLAGS_spec.c_str(), static_cast<long long>(batch), FLAGS_threads, steps, 1e3 * total_seconds / steps,
              batch * steps / total_seconds, 1e3 * best_step, batch / best_step);
  std::printf("%-22s %12s %12s   (each layer's fastest round)\n", "layer", "forward ms", "backward ms");
  double total = 0;
  for (const tessera::LayerProfile& p : best) {
    std::printf("%-22s %12.3f %12.3f\n", p.layer.c_str(), 1e3 * p.forward_seconds, 1e3 * p.backward_seconds);
    total += p.forward_seconds + p.backward_seconds;
  }
  std::printf("%-22s %12.3f ms\n", "sum of layers", 1e3 * total);
  return 0;
}
