// inference_bench: CPU inference time per batch of exported model versions
// (Tessera's runtime, as `tessera serve` and `tessera predict` run them), or of
// a job spec's model in fp32 beside its int8 quantization. The models run in
// turns, round after round, so that a busy shared machine slows them alike;
// each model's figure is its fastest round, and the ratio is against the first.
//
//   build/bench/inference_bench --spec examples/fmnist-cnn.pbtxt        fp32 (unfused, fused[, folded]) vs int8
//   build/bench/inference_bench --models REPO/cnn/1,REPO/cnn/2         two exported versions
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gflags/gflags.h>

#include "core/spec.h"
#include "export/fold_batch_norm.h"
#include "export/onnx_import.h"
#include "export/quantize.h"
#include "export/runtime_model.h"
#include "models/model.h"

DEFINE_string(spec, "", "job spec: time its model in fp32 (initial parameters; layer by layer, as training runs "
                        "it, and fused as PrepareForInference makes it) and int8 (calibrated on --calibration random "
                        "examples)");
DEFINE_string(models, "", "comma-separated model version directories (MODEL_REPO/NAME/VERSION) to time");
DEFINE_int32(batch, 64, "examples per inference");
DEFINE_int32(rounds, 10, "rounds; each model runs --passes inferences per round");
DEFINE_int32(passes, 20, "inferences per model and round");
DEFINE_int32(threads, 1, "oneDNN threads");
DEFINE_bool(profile, true, "print each model's time per layer (its mean over all passes)");
DEFINE_int32(calibration, 512, "--spec: examples that calibrate the int8 model");

namespace {

using tessera::Model;

struct Candidate {
  std::string name;
  std::unique_ptr<Model> model;
  double best_seconds = 1e30;  // per inference
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "inference_bench: %s\n", what.c_str());
  std::exit(2);
}

std::vector<Candidate> FromSpec() {
  auto spec = tessera::LoadJobSpec(FLAGS_spec);
  if (!spec.ok()) Fail(spec.status().ToString());
  const tessera::Shape image = {1, 28, 28};
  auto model = Model::Create(spec->model(), image, 10);
  if (!model.ok()) Fail(model.status().ToString());
  tessera::InitializeParameters((*model)->tensors(), 1, (*model)->params());
  std::vector<float> params((*model)->params(), (*model)->params() + (*model)->num_keys());
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  std::vector<float> calibration(static_cast<size_t>(FLAGS_calibration) * 784);
  for (float& v : calibration) v = normal(rng);
  auto q = tessera::QuantizeInt8(spec->model(), image, 10, params, calibration, FLAGS_calibration);
  if (!q.ok()) Fail(q.status().ToString());
  auto int8 = Model::Create(q->spec, image, 10);
  if (!int8.ok()) Fail(int8.status().ToString());
  std::copy(q->params.begin(), q->params.end(), (*int8)->params());
  auto fused = Model::Create(spec->model(), image, 10);
  if (!fused.ok()) Fail(fused.status().ToString());
  std::copy(params.begin(), params.end(), (*fused)->params());
  (*fused)->PrepareForInference();
  (*int8)->PrepareForInference();
  std::vector<Candidate> out;
  out.push_back({FLAGS_spec + " fp32, layer by layer", std::move(model).value()});
  out.push_back({FLAGS_spec + " fp32, fused", std::move(fused).value()});
  // As tessera serve and predict run it: batch norms folded, then fused.
  auto folded = tessera::FoldBatchNorms(spec->model(), image, params);
  if (!folded.ok()) Fail(folded.status().ToString());
  if (folded->folded > 0) {
    auto folded_model = Model::Create(folded->spec, image, 10);
    if (!folded_model.ok()) Fail(folded_model.status().ToString());
    std::copy(folded->params.begin(), folded->params.end(), (*folded_model)->params());
    (*folded_model)->PrepareForInference();
    out.push_back({FLAGS_spec + " fp32, batch norms folded, fused", std::move(folded_model).value()});
  }
  out.push_back({FLAGS_spec + " int8, fused", std::move(int8).value()});
  return out;
}

std::vector<Candidate> FromModels() {
  std::vector<Candidate> out;
  size_t begin = 0;
  while (begin <= FLAGS_models.size()) {
    size_t end = FLAGS_models.find(',', begin);
    if (end == std::string::npos) end = FLAGS_models.size();
    const std::string dir = FLAGS_models.substr(begin, end - begin);
    begin = end + 1;
    if (dir.empty()) continue;
    auto files = tessera::ReadModelVersion(dir);
    if (!files.ok()) Fail(files.status().ToString());
    auto model = tessera::BuildRuntimeModel(files->model);  // as tessera serve and predict run it
    if (!model.ok()) Fail(dir + ": " + model.status().ToString());
    out.push_back({dir + " (" + files->model.precision + ", " + std::to_string(files->model.params.size()) +
                       " parameters)",
                   std::move(model).value()});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("inference_bench --spec SPEC | --models DIR[,DIR...]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  omp_set_num_threads(FLAGS_threads);
  if (FLAGS_spec.empty() == FLAGS_models.empty()) Fail("give --spec or --models (one of them)");
  if (FLAGS_batch < 1 || FLAGS_rounds < 1 || FLAGS_passes < 1) Fail("--batch, --rounds and --passes must be >= 1");
  std::vector<Candidate> candidates = FLAGS_spec.empty() ? FromModels() : FromSpec();

  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(FLAGS_batch) * candidates[0].model->input_features());
  for (float& v : x) v = normal(rng);
  for (Candidate& c : candidates) {
    if (c.model->input_features() * FLAGS_batch != static_cast<int64_t>(x.size())) Fail(c.name + ": another input shape");
    for (int i = 0; i < 3; ++i) c.model->Infer(x.data(), FLAGS_batch);  // warm-up: primitives, weights
  }
  if (FLAGS_profile) {
    for (Candidate& c : candidates) c.model->EnableProfiling();
  }
  for (int r = 0; r < FLAGS_rounds; ++r) {
    for (Candidate& c : candidates) {
      const auto start = std::chrono::steady_clock::now();
      for (int p = 0; p < FLAGS_passes; ++p) c.model->Infer(x.data(), FLAGS_batch);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / FLAGS_passes;
      c.best_seconds = std::min(c.best_seconds, s);
    }
  }
  std::printf("batch %d, %d thread(s), best of %d rounds x %d inferences\n", FLAGS_batch, FLAGS_threads,
              FLAGS_rounds, FLAGS_passes);
  for (const Candidate& c : candidates) {
    std::printf("  %-60s %8.3f ms/batch %10.0f samples/s   %.2fx the first\n", c.name.c_str(), 1e3 * c.best_seconds,
                FLAGS_batch / c.best_seconds, candidates[0].best_seconds / c.best_seconds);
  }
  if (FLAGS_profile) {
    const double passes = static_cast<double>(FLAGS_rounds) * FLAGS_passes;
    for (const Candidate& c : candidates) {
      std::printf("%s, ms per layer:\n", c.name.c_str());
      for (const tessera::LayerProfile& p : c.model->profile()) {
        std::printf("  %-24s %8.3f\n", p.layer.c_str(), 1e3 * p.forward_seconds / passes);
      }
    }
  }
  return 0;
}
