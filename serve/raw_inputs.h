// The raw inputs of a table or image model in KServe v2 JSON requests: what
// a client sends instead of the model's own preprocessed "input" tensor,
// made into model inputs by the manifest's preprocessing exactly as
// `tessera predict` does (export/input_transform.h):
//   - a table model: one input per feature column, named by the column,
//     shape [N] or [N, 1], datatype FP32, FP64, INT32 or INT64 (converted to
//     float32; FP64 and JSON numbers are rounded once from the double the
//     JSON parser gives), data flat or nested as the shape; a null element
//     is a missing value (the column's fill value). A categorical column's
//     input is BYTES (each element a string, the field as a training file
//     holds it), or INT32 or INT64 for integer categories (each made into
//     its decimal text, as a training file holds it), null a missing value
//     (id 0); mapped to its id by the recorded hashing or vocabulary. Every
//     column must come, each once, all with the same N;
//   - an image model: one input "image", datatype BYTES, shape [N] or
//     [N, 1], each element an encoded PNG or JPEG file as base64
//     (serve/base64.h), of at most kServeMaxImagePixels pixels;
//   - a libsvm model: two inputs, "indices" (INT64) and "values" (FP32), both
//     [N, K] with 1 <= K <= the model's pairs, data flat or nested: row r's
//     pairs are a libsvm line's features (indexes as in the file, so with
//     the manifest's index_base; strictly increasing), then any padding
//     pairs (-1, 0). Made into the model's pairs as `tessera predict` makes
//     a line (LibsvmFeaturesToExample): an index outside the model's
//     features is refused. Values are rounded once from the JSON parser's
//     double to float32. At most kServeMaxImageInputBytes of model input
//     (rows x 2 x pairs floats) a request, as for images;
//   - a Criteo model (a sparse table): one input per field, named as
//     Criteo's columns, "I1" to "I13" and "C1" to "C26", shape [N] or
//     [N, 1]: an integer field INT32 or INT64 (or BYTES, its decimal text),
//     a categorical field BYTES (or INT32, INT64: its decimal text), null
//     or "" a missing value; made into CriteoNumeric and CriteoId as
//     training does (core/criteo_format.h). Its ids come out beside x.
// Also the metadata's list of these inputs. Functions only: thread-safe.
#ifndef TESSERA_SERVE_RAW_INPUTS_H_
#define TESSERA_SERVE_RAW_INPUTS_H_

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "export/model_preprocessing.h"

namespace tessera {

// The name of an image model's BYTES input.
inline constexpr char kImageInputName[] = "image";
// The names of a libsvm model's two inputs.
inline constexpr char kLibsvmIndicesName[] = "indices";
inline constexpr char kLibsvmValuesName[] = "values";

// The most pixels an image sent to serve may have (4096 x 4096: 48 MiB as
// RGB bytes while decoded), checked from its header before decoding, so that
// a small compressed file cannot make an HTTP thread hold training's limit
// (64 Mi pixels, 192 MiB).
inline constexpr int64_t kServeMaxImagePixels = int64_t{1} << 24;

// The most bytes of model input (float32) one request's images may make: a
// small file decodes to a whole example (a 1x1 PNG of 70 bytes to
// 3 x 224 x 224 floats), so the count of images is bounded by what they
// make, not by the body's size. Default 256 MiB.
inline constexpr int64_t kServeMaxImageInputBytes = int64_t{256} << 20;

// True when `inputs` (a request's "inputs" array) addresses the raw inputs
// of a model preprocessed as `p`, rather than its own tensor named
// `model_input`: p is a table, image or libsvm and the inputs are not exactly one
// tensor named model_input; always for a Criteo model.
bool UsesRawInputs(const nlohmann::json& inputs, const ModelPreprocessing& p, const std::string& model_input);

// Parses `inputs` as the raw inputs of a model preprocessed as `p` into
// *x (batch * features, the model's inputs) and *batch. InvalidArgument,
// one line for the client naming the input (and element), for an unknown,
// repeated or missing input, a wrong datatype or shape, an element that is
// not a number of its datatype, bad base64, an image that does not
// decode, or images that would make more than `max_image_input_bytes` of
// model input; for a libsvm model also pairs the model does not take (above).
// A Criteo model's x holds the numeric features and -1 at each id slot,
// and *sparse_ids (required for it) the ids, [batch * 26], kNoSparseId for
// an empty field. REQUIRES: p.kind is not kIdx.
Status ParseRawInputs(const nlohmann::json& inputs, const ModelPreprocessing& p, std::vector<float>* x,
                      int64_t* batch, int64_t max_image_input_bytes = kServeMaxImageInputBytes,
                      std::vector<uint64_t>* sparse_ids = nullptr);

// The metadata's "inputs" for the raw inputs of `p` (table, image or libsvm).
std::vector<JsonObject> RawInputsMetadata(const ModelPreprocessing& p);

}  // namespace tessera

#endif  // TESSERA_SERVE_RAW_INPUTS_H_
