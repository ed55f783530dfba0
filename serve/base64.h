// Base64 (RFC 4648, standard alphabet, '=' padding) decoding of the BYTES
// elements of KServe v2 JSON requests: an image model's encoded PNG or JPEG
// files travel as base64 strings. Strict: no whitespace, no URL-safe
// alphabet, padding required, the padding bits zero. Thread-safe (no state).
#ifndef TESSERA_SERVE_BASE64_H_
#define TESSERA_SERVE_BASE64_H_

#include <string>
#include <string_view>

#include "core/status.h"

namespace tessera {

// The bytes `text` encodes. InvalidArgument naming the first offending
// offset for a length not a multiple of 4, a character outside the
// alphabet, padding anywhere but at the end, or non-zero padding bits.
StatusOr<std::string> DecodeBase64(std::string_view text);

// `bytes` encoded (for tests and clients).
std::string EncodeBase64(std::string_view bytes);

}  // namespace tessera

#endif  // TESSERA_SERVE_BASE64_H_
