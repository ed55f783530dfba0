#include "worker/batch_reader.h"

namespace tessera {

namespace {

// (p/255 - mean)/std as one multiply-add per pixel: p * a + b.
struct PixelScale {
  PixelScale(float mean, float std) : a(1.0f / (255.0f * std)), b(-mean / std) {}
  float operator()(uint8_t p) const { return static_cast<float>(p) * a + b; }
  float a, b;
};

}  // namespace

Status CheckDatasetInputs(const ImageDataset& data, float mean, float std, const Model& model, const std::string& what) {
  bool present[256] = {};
  for (uint8_t p : data.pixels) present[p] = true;
  const PixelScale scale(mean, std);
  for (int p = 0; p < 256; ++p) {
    if (!present[p]) continue;
    const float value = scale(static_cast<uint8_t>(p));
    Status valid = model.ValidateInputValues(&value, 1);
    if (!valid.ok()) return valid.WithContext(what + ": pixel byte " + std::to_string(p));
  }
  return OkStatus();
}

void BatchReader::Read(const std::vector<int64_t>& order, int64_t begin, int64_t count, std::vector<float>* x,
                       std::vector<uint8_t>* labels) const {
  const int64_t size = dataset_->example_size();
  x->resize(count * size);
  labels->resize(count);
  const PixelScale scale(mean_, std_);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t example = order.empty() ? begin + i : order[begin + i];
    const uint8_t* pixels = dataset_->pixels.data() + example * size;
    float* out = x->data() + i * size;
    for (int64_t p = 0; p < size; ++p) out[p] = scale(pixels[p]);
    (*labels)[i] = dataset_->labels[example];
  }
}

}  // namespace tessera
