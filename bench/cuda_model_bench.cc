// cuda_model_bench: Model::TrainBatch of a job spec's model on random batches,
// on the CPU and on the GPU in the same run — one worker's compute, host API
// included (parameter upload, batch upload, gradient download), no
// communication. Then, with --profile, the time per layer on the GPU (the
// device drained around every layer, so the total exceeds the plain step).
//
//   build/bench/cuda_model_bench --spec examples/fmnist-cnn.pbtxt --batch 64 --steps 200 --threads 1
//
// A device that cannot run (no GPU, or a build without CUDA) is reported and skipped.
#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gflags/gflags.h>

#include "core/spec.h"
#include "models/device.h"
#include "models/model.h"

DEFINE_string(spec, "examples/fmnist-cnn.pbtxt", "job spec whose model to time");
DEFINE_int32(batch, 64, "examples per step");
DEFINE_int32(steps, 100, "timed steps per device (after 10 warm-up steps)");
DEFINE_int32(threads, 1, "OpenBLAS and oneDNN threads for the CPU");
DEFINE_string(devices, "cpu,cuda", "devices to time, comma-separated");
DEFINE_bool(profile, true, "also time each layer on the GPU");

namespace {

struct Result {
  double ms_per_step = 0;
  double samples_per_sec = 0;
};

Result Time(tessera::Model& m, const std::vector<float>& x, const std::vector<float>& labels, int64_t batch,
            int steps) {
  for (int i = 0; i < 10; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {1e3 * seconds / steps, batch * steps / seconds};
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  openblas_set_num_threads(FLAGS_threads);
  omp_set_num_threads(FLAGS_threads);
  auto spec = tessera::LoadJobSpec(FLAGS_spec);
  if (!spec.ok()) {
    std::fprintf(stderr, "cuda_model_bench: %s\n", spec.status().ToString().c_str());
    return 2;
  }
  const int64_t batch = FLAGS_batch;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(batch * 784);
  for (float& v : x) v = normal(rng);
  std::vector<float> labels(batch);
  for (float& l : labels) l = static_cast<float>(rng() % 10);

  std::printf("%s: batch %lld, %d timed steps, TrainBatch (host API: upload, forward, backward, download)\n",
              FLAGS_spec.c_str(), static_cast<long long>(batch), FLAGS_steps);
  double cpu_ms = 0, cuda_ms = 0;
  std::stringstream devices(FLAGS_devices);
  for (std::string name; std::getline(devices, name, ',');) {
    auto device = tessera::ResolveDevice(name);
    if (!device.ok()) {
      std::printf("%-5s skipped: %s\n", name.c_str(), device.status().message().c_str());
      continue;
    }
    auto model = tessera::Model::Create(spec->model(), tessera::Shape{1, 28, 28}, 10, *device);
    if (!model.ok()) {
      std::printf("%-5s skipped: %s\n", name.c_str(), model.status().ToString().c_str());
      continue;
    }
    tessera::Model& m = **model;
    tessera::InitializeParameters(m.tensors(), 1, m.params());
    const Result r = Time(m, x, labels, batch, FLAGS_steps);
    std::printf("%-5s %8.3f ms/step %10.0f samples/s%s\n", name.c_str(), r.ms_per_step, r.samples_per_sec,
                *device == tessera::Device::kCpu ? (" (" + std::to_string(FLAGS_threads) + " threads)").c_str() : "");
    (*device == tessera::Device::kCpu ? cpu_ms : cuda_ms) = r.ms_per_step;
    if (FLAGS_profile && *device == tessera::Device::kCuda) {
      m.EnableProfiling();
      const int steps = 20;
      for (int i = 0; i < steps; ++i) m.TrainBatch(x.data(), labels.data(), batch, i);
      std::printf("  %-22s %12s %12s   (per step, device drained around each layer)\n", "layer", "forward ms",
                  "backward ms");
      double total = 0;
      for (const tessera::LayerProfile& p : m.profile()) {
        std::printf("  %-22s %12.4f %12.4f\n", p.layer.c_str(), 1e3 * p.forward_seconds / steps,
                    1e3 * p.backward_seconds / steps);
        total += p.forward_seconds + p.backward_seconds;
      }
      std::printf("  %-22s %25.4f\n", "layers total", 1e3 * total / steps);
    }
  }
  if (cpu_ms > 0 && cuda_ms > 0) std::printf("cuda / cpu speed: %.1fx\n", cpu_ms / cuda_ms);
  return 0;
}
