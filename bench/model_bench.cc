// model_bench: one worker's compute alone — forward + backward of a job
// spec's model on random batches, single process, no communication — with
// the time per layer. It shows where a training step's compute goes; compare
// bench/torch_reference.py --mode speed for the same model.
//
//   build/bench/model_bench --spec examples/fmnist-cnn.pbtxt --batch 64 --steps 50 --threads 1
#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <gflags/gflags.h>

#include "core/spec.h"
#include "models/model.h"

DEFINE_string(spec, "examples/fmnist-cnn.pbtxt", "job spec whose model to time");
DEFINE_int32(batch, 64, "examples per step");
DEFINE_int32(steps, 50, "timed steps (after 5 warm-up steps)");
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
  std::vector<uint8_t> labels(batch);
  for (uint8_t& l : labels) l = rng() % 10;

  for (int i = 0; i < 5; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
  m.EnableProfiling();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < FLAGS_steps; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("%s: batch %lld, %d threads, %d steps: %.2f ms/step, %.0f samples/s\n", FLAGS_spec.c_str(),
              static_cast<long long>(batch), FLAGS_threads, FLAGS_steps, 1e3 * seconds / FLAGS_steps,
              batch * FLAGS_steps / seconds);
  std::printf("%-22s %12s %12s\n", "layer", "forward ms", "backward ms");
  double total = 0;
  for (const tessera::LayerProfile& p : m.profile()) {
    std::printf("%-22s %12.3f %12.3f\n", p.layer.c_str(), 1e3 * p.forward_seconds / FLAGS_steps,
                1e3 * p.backward_seconds / FLAGS_steps);
    total += p.forward_seconds + p.backward_seconds;
  }
  std::printf("%-22s %12.3f ms (the rest of the step: loss, buffers)\n", "layers total", 1e3 * total / FLAGS_steps);
  return 0;
}
