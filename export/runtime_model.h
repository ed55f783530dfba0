// The one step from an imported model (onnx_import.h) to a Tessera Model
// that runs it: the layer stack built for the imported input shape, with
// the imported parameters. `tessera serve` and `tessera predict` both run
// models built here, so a new kind of exported model (another precision,
// say) is taught to both in this one place.
#ifndef TESSERA_EXPORT_RUNTIME_MODEL_H_
#define TESSERA_EXPORT_RUNTIME_MODEL_H_

#include <memory>

#include "core/status.h"
#include "export/onnx_import.h"
#include "models/model.h"

namespace tessera {

// A CPU Model (Model::Infer runs on the CPU only) of `imported`'s layers and
// parameters, prepared for inference (Model::PrepareForInference): int8
// layers compute in int8, convolutions run fused with their ReLU and pooling. InvalidArgument when the layers do not fit the input shape or
// the parameter count differs from what the layers take.
StatusOr<std::unique_ptr<Model>> BuildRuntimeModel(const ImportedModel& imported);

}  // namespace tessera

#endif  // TESSERA_EXPORT_RUNTIME_MODEL_H_
