#include "export/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "export/fold_batch_norm.h"
#include "models/model.h"

namespace tessera {
namespace {

bool IsQuantizable(const proto::LayerSpec& layer) { return layer.has_conv2d() || layer.has_linear(); }

// Inputs of one layer seen over the calibration data.
struct InputRange {
  float min = 0, max_abs = 0;
  std::vector<int64_t> histogram;  // of |x| over [0, max_abs], second pass
  int64_t count = 0;
};

constexpr int kBins = 4096;

// Runs the float model over x in batches, calling see(layer, input, n) with
// each quantizable layer's input (n values).
template <typename See>
void ForEachLayerInput(Model& model, const proto::ModelSpec& spec, const std::vector<float>& x, int64_t examples,
                       int64_t batch_size, See see) {
  const int64_t features = model.input_features();
  for (int64_t begin = 0; begin < examples; begin += batch_size) {
    const int64_t n = std::min(batch_size, examples - begin);
    const float* batch = x.data() + begin * features;
    model.Infer(batch, n);
    for (int i = 0; i < model.num_layers(); ++i) {
      if (!IsQuantizable(spec.layer(i))) continue;
      const float* in = i == 0 ? batch : model.LayerOutput(i - 1);
      const int64_t count = n * (i == 0 ? features : model.layer(i - 1).out_features());
      see(i, in, count);
    }
  }
}

}  // namespace

StatusOr<QuantizedModel> QuantizeInt8(const proto::ModelSpec& unfolded_spec, const Shape& input_shape,
                                      int num_classes, const std::vector<float>& unfolded_params,
                                      const std::vector<float>& x, int64_t examples, const Int8Options& options,
                                      const std::vector<int64_t>& categorical_rows) {
  for (int i = 0; i < unfolded_spec.layer_size(); ++i) {
    const proto::LayerSpec& l = unfolded_spec.layer(i);
    if ((l.has_conv2d() && l.conv2d().has_int8()) || (l.has_linear() && l.linear().has_int8())) {
      return InvalidArgumentError("model.layer[" + std::to_string(i) + "] is int8 already");
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> unfolded,
                   Model::Create(unfolded_spec, input_shape, num_classes, Device::kCpu, categorical_rows));
  if (unfolded_params.size() != unfolded->num_keys()) {
    return InvalidArgumentError("the model has " + std::to_string(unfolded->num_keys()) + " parameters, not the " +
                                std::to_string(unfolded_params.size()) + " given");
  }
  // Batch norms after a Conv2d or Linear go into its int8 weights and bias,
  // so the int8 layer computes both (and fuses the ReLU and pooling after).
  ASSIGN_OR_RETURN(FoldedModel folded,
                   FoldBatchNorms(unfolded_spec, input_shape, unfolded_params, categorical_rows));
  const proto::ModelSpec& spec = folded.spec;
  const std::vector<float>& params = folded.params;
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Model::Create(spec, input_shape, num_classes, Device::kCpu, categorical_rows));
  if (examples < 1 || x.size() < static_cast<size_t>(examples * model->input_features())) {
    return InvalidArgumentError("int8 calibration needs at least one example");
  }
  if (!(options.percentile > 0 && options.percentile <= 1) || options.batch_size < 1) {
    return InvalidArgumentError("int8 calibration: percentile must be in (0, 1] and the batch size >= 1");
  }
  std::copy(params.begin(), params.end(), model->params());

  // Pass 1: each input's range; pass 2: the histogram of |x| in it.
  std::vector<InputRange> ranges(spec.layer_size());
  ForEachLayerInput(*model, spec, x, examples, options.batch_size, [&](int i, const float* in, int64_t n) {
    InputRange& r = ranges[i];
    for (int64_t k = 0; k < n; ++k) {
      r.min = std::min(r.min, in[k]);
      r.max_abs = std::max(r.max_abs, std::fabs(in[k]));
    }
    r.count += n;
  });
  if (options.percentile < 1) {
    for (InputRange& r : ranges) r.histogram.assign(kBins, 0);
    ForEachLayerInput(*model, spec, x, examples, options.batch_size, [&](int i, const float* in, int64_t n) {
      InputRange& r = ranges[i];
      if (!(r.max_abs >= std::numeric_limits<float>::min())) return;  // all (near) zero: kBins / max_abs overflows
      const float to_bin = kBins / r.max_abs;
      for (int64_t k = 0; k < n; ++k) {
        const int bin = std::min(kBins - 1, static_cast<int>(std::fabs(in[k]) * to_bin));
        ++r.histogram[bin];
      }
    });
  }

  QuantizedModel out;
  out.spec = spec;
  out.folded_batch_norms = folded.folded;
  const std::vector<TensorInfo>& tensors = model->tensors();
  size_t t = 0;  // the next float tensor
  for (int i = 0; i < spec.layer_size(); ++i) {
    const std::string name = "layer" + std::to_string(i) + "." + model->layer(i).type();
    // The layer's float tensors, in order.
    std::vector<const TensorInfo*> own;
    while (t < tensors.size() && tensors[t].name.starts_with(name + ".")) own.push_back(&tensors[t++]);
    if (!IsQuantizable(spec.layer(i))) {
      for (const TensorInfo* info : own) {
        out.params.insert(out.params.end(), params.begin() + info->offset, params.begin() + info->offset + info->size);
      }
      continue;
    }
    // Input range: the percentile of |x| (the top of its histogram bin).
    const InputRange& r = ranges[i];
    float top = r.max_abs;
    if (options.percentile < 1 && r.max_abs > 0) {
      const double want = options.percentile * static_cast<double>(r.count);
      int64_t seen = 0;
      for (int b = 0; b < kBins; ++b) {
        seen += r.histogram[b];
        if (seen >= want) {
          top = std::min(r.max_abs, r.max_abs * (b + 1) / kBins);
          break;
        }
      }
    }
    Int8LayerReport report;
    report.layer = name;
    report.input_min = r.min;
    report.input_max = r.max_abs;
    report.input_unsigned = r.min >= 0;
    report.input_scale = top / (report.input_unsigned ? 255.0f : 127.0f);
    if (!std::isnormal(report.input_scale)) report.input_scale = 1.0f;  // an input that is (nearly) always 0
    if (r.count > 0 && options.percentile < 1) {
      int64_t beyond = 0;
      for (int b = kBins - 1; b >= 0 && r.max_abs * b / kBins >= top; --b) beyond += r.histogram[b];
      report.clipped_fraction = static_cast<float>(beyond) / r.count;
    }
    proto::Int8Spec* int8 = spec.layer(i).has_conv2d() ? out.spec.mutable_layer(i)->mutable_conv2d()->mutable_int8()
                                                       : out.spec.mutable_layer(i)->mutable_linear()->mutable_int8();
    int8->set_input_scale(report.input_scale);
    int8->set_input_unsigned(report.input_unsigned);
    out.layers.push_back(report);

    // Weights: symmetric per output channel.
    const TensorInfo& w = *own.at(0);
    const int64_t channels = w.shape[0];
    const int64_t per_channel = static_cast<int64_t>(w.size) / channels;
    std::vector<float> scales(channels);
    for (int64_t o = 0; o < channels; ++o) {
      const float* row = params.data() + w.offset + o * per_channel;
      float max_abs = 0;
      for (int64_t k = 0; k < per_channel; ++k) max_abs = std::max(max_abs, std::fabs(row[k]));
      scales[o] = max_abs / 127.0f;
      if (!std::isnormal(scales[o])) scales[o] = 1.0f;  // an all-zero (or denormal) channel
      for (int64_t k = 0; k < per_channel; ++k) {
        out.params.push_back(std::nearbyint(std::clamp(row[k] / scales[o], -127.0f, 127.0f)));
      }
    }
    if (own.size() == 2) {  // the bias, as it is
      out.params.insert(out.params.end(), params.begin() + own[1]->offset,
                        params.begin() + own[1]->offset + own[1]->size);
    }
    out.params.insert(out.params.end(), scales.begin(), scales.end());
  }
  // The result must be what Model::Create lays out for the int8 spec.
  ASSIGN_OR_RETURN(std::unique_ptr<Model> check,
                   Model::Create(out.spec, input_shape, num_classes, Device::kCpu, categorical_rows));
  if (check->num_keys() != out.params.size()) {
    return InternalError("int8 quantization laid out " + std::to_string(out.params.size()) + " parameters, the int8 "
                         "model has " + std::to_string(check->num_keys()));
  }
  return out;
}

}  // namespace tessera
