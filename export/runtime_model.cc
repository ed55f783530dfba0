#include "export/runtime_model.h"

#include <algorithm>
#include <string>

namespace tessera {

Device RuntimeDevice(const ImportedModel& imported, Device wanted) {
  return imported.precision == "int8" ? Device::kCpu : wanted;  // int8 kernels: oneDNN's, CPU only
}

StatusOr<std::unique_ptr<Model>> BuildRuntimeModel(const ImportedModel& imported, Device device) {
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Create(imported.spec, imported.input_shape,
                                                               imported.num_classes, RuntimeDevice(imported, device)));
  if (model->num_keys() != imported.params.size()) {
    return InvalidArgumentError("the model has " + std::to_string(model->num_keys()) + " parameters, the file " +
                                std::to_string(imported.params.size()));
  }
  std::copy(imported.params.begin(), imported.params.end(), model->params());
  model->PrepareForInference();  // fused convolutions; the model never trains
  return model;
}

}  // namespace tessera
