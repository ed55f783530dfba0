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
#include "models/device.h"
#include "models/model.h"

namespace tessera {

// A Model of `imported`'s layers and parameters on `device`, prepared for
// inference (Model::PrepareForInference): batch norms after a Conv2d or
// Linear folded into it (export/fold_batch_norm.h), and on the CPU, int8
// layers compute in int8 and convolutions run fused with their ReLU and
// pooling. A sparse_linear model (imported.sparse_features > 0) is built
// as training builds it, on its [K, 2] pairs, with no batch norm folded,
// so it computes the training evaluation's bits; so is a sparse_embedding
// model (imported.sparse_table), whose caller binds each batch's rows
// (Model::BindSparseRows) before running it. int8, sparse_linear and
// sparse_embedding models run on the CPU whatever `device` says (RuntimeDevice).
// Model::ValidateInputValues of the result says which inputs it takes (an
// embedding model's: ids in [0, num_embeddings)); serve and predict check
// every input with it before running it. InvalidArgument when
// the layers do not fit the input shape or the parameter count differs from
// what the layers take; Unavailable when the GPU cannot be used.
StatusOr<std::unique_ptr<Model>> BuildRuntimeModel(const ImportedModel& imported, Device device = Device::kCpu);

// Where BuildRuntimeModel runs `imported` when asked for `wanted`.
Device RuntimeDevice(const ImportedModel& imported, Device wanted);

}  // namespace tessera

#endif  // TESSERA_EXPORT_RUNTIME_MODEL_H_
