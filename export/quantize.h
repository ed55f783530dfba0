// Post-training int8 quantization of a float model: every Conv2d and Linear
// layer becomes an int8 layer (models/int8_layers.h); the other layers (an
// embedding's table included) stay float.
//
// - BatchNorms right after a Conv2d or Linear are first folded into it
//   (export/fold_batch_norm.h): the int8 layer computes both.
// - Weights: symmetric, per output channel: scale = max|w| / 127 over the
//   channel, q = round(w / scale) in [-127, 127].
// - Activations (each int8 layer's input): per tensor, zero point 0, the
//   range calibrated by running the float model in evaluation mode over
//   calibration examples: uint8 with scale max / 255 when the input is never
//   negative there (after a ReLU), int8 with scale max|x| / 127 otherwise.
//   The range's top is the `percentile` of |x| (1.0: the largest value seen),
//   so that a few outliers do not waste the 8 bits.
#ifndef TESSERA_EXPORT_QUANTIZE_H_
#define TESSERA_EXPORT_QUANTIZE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

struct Int8Options {
  // Of |x| over the calibration data: the value the input range ends at.
  double percentile = 0.9999;
  // Examples per calibration pass.
  int64_t batch_size = 64;
};

// What quantization chose for one layer.
struct Int8LayerReport {
  std::string layer;          // "layer3.conv2d"
  float input_min = 0, input_max = 0;  // seen in calibration
  float input_scale = 0;
  bool input_unsigned = false;
  float clipped_fraction = 0;  // of calibration inputs beyond the range
};

struct QuantizedModel {
  proto::ModelSpec spec;       // with Int8Spec on every Conv2d and Linear, folded batch norms left out
  std::vector<float> params;   // in that spec's key order (weights as integers, weight_scale added)
  std::vector<Int8LayerReport> layers;
  int folded_batch_norms = 0;
};

// Quantizes `spec` with float `params` (key order), calibrating on x
// [examples, input features] (normalized as in training). InvalidArgument
// when the spec does not build, params do not fit it, a layer is int8
// already, or there are no calibration examples. `categorical_rows` as
// Model::Create takes them (a column_embedding first layer, which stays
// float: its rows are copied, not multiplied).
StatusOr<QuantizedModel> QuantizeInt8(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                      const std::vector<float>& params, const std::vector<float>& x,
                                      int64_t examples, const Int8Options& options = {},
                                      const std::vector<int64_t>& categorical_rows = {});

}  // namespace tessera

#endif  // TESSERA_EXPORT_QUANTIZE_H_
