#include "worker/batch_reader.h"

#include <algorithm>

namespace tessera {

namespace {

// One multiply-add per value, v * a + b: (p/255 - mean)/std for byte pixels,
// (v - mean)/std for int32 values (ids: mean 0 and std 1 keep them as they are).
struct PixelScale {
  PixelScale(float mean, float std, bool int32_values)
      : a(1.0f / ((int32_values ? 1.0f : 255.0f) * std)), b(-mean / std) {}
  float operator()(float v) const { return v * a + b; }
  float a, b;
};

}  // namespace

Status CheckDatasetInputs(const ImageDataset& data, float mean, float std, const Model& model, const std::string& what) {
  const PixelScale scale(mean, std, data.int32_values);
  if (data.int32_values) {
    std::vector<int32_t> distinct = data.ids;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (int32_t v : distinct) {
      const float value = scale(static_cast<float>(v));
      Status valid = model.ValidateInputValues(&value, 1);
      if (!valid.ok()) {
        return valid.WithContext(what + ": int32 value " + std::to_string(v) +
                                 " (int32 data become (v - mean) / std: data.mean 0 and data.std 1 keep ids as they are)");
      }
    }
    return OkStatus();
  }
  bool present[256] = {};
  for (uint8_t p : data.pixels) present[p] = true;
  for (int p = 0; p < 256; ++p) {
    if (!present[p]) continue;
    const float value = scale(static_cast<float>(p));
    Status valid = model.ValidateInputValues(&value, 1);
    if (!valid.ok()) return valid.WithContext(what + ": pixel byte " + std::to_string(p));
  }
  return OkStatus();
}

void BatchReader::Read(const std::vector<int64_t>& order, int64_t begin, int64_t count, std::vector<float>* x,
                       std::vector<float>* labels) const {
  const int64_t size = dataset_->example_size();
  x->resize(count * size);
  labels->resize(count);
  const PixelScale scale(mean_, std_, dataset_->int32_values);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t example = order.empty() ? begin + i : order[begin + i];
    float* out = x->data() + i * size;
    if (dataset_->int32_values) {
      const int32_t* values = dataset_->ids.data() + example * size;
      for (int64_t p = 0; p < size; ++p) out[p] = scale(static_cast<float>(values[p]));
    } else {
      const uint8_t* pixels = dataset_->pixels.data() + example * size;
      for (int64_t p = 0; p < size; ++p) out[p] = scale(pixels[p]);
    }
    (*labels)[i] = static_cast<float>(dataset_->labels[example]);  // a class id, exact
  }
}

}  // namespace tessera
