// CurveZMQ keys (libzmq's CURVE, libsodium underneath) and their files.
//
// A key is 32 bytes, kept as Z85 text: 40 characters. `tessera keygen`
// writes a pair as two one-line files (docs/FORMATS.md, "CURVE key files"):
//   NAME.secret  "curve-secret-key Z85"   mode 0600, this node's own key
//   NAME.pub     "curve-public-key Z85 NAME"
// An allow-list (`--curve-allow-keys`) is .pub files concatenated: one
// public-key line per admitted node; blank lines and '#' comments are
// skipped. The public half of a secret key is derived from it
// (zmq_curve_public), so a secret file needs nothing else.
//
// Every reader validates: a missing file, a line of the other kind (a public
// key where a secret one is needed), a key that is not 40 Z85 characters
// are InvalidArgument naming the file, line and column.
#ifndef TESSERA_CORE_CURVE_KEYS_H_
#define TESSERA_CORE_CURVE_KEYS_H_

#include <map>
#include <string>

#include "core/status.h"

namespace tessera {

constexpr size_t kCurveKeyChars = 40;  // Z85 of 32 bytes

// True when libzmq was built with CURVE (Debian's libzmq5 is).
bool CurveAvailable();

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// A fresh pair (zmq_curve_keypair). FailedPrecondition without CURVE.
StatusOr<CurveKeyPair> GenerateCurveKeyPair();

// Writes DIR/NAME.secret (mode 0600, created so: never readable by others,
// not even for a moment) and DIR/NAME.pub (0644). FailedPrecondition when either
// file is there (a key is never overwritten), InvalidArgument for a NAME
// that is not [A-Za-z0-9._-]+, Unavailable on an I/O error.
Status WriteCurveKeyPair(const CurveKeyPair& keys, const std::string& dir, const std::string& name);

// The pair of the secret key in `path` (its public half derived).
StatusOr<CurveKeyPair> ReadCurveSecretKey(const std::string& path);

// The public key in `path`, a one-key .pub file.
StatusOr<std::string> ReadCurvePublicKey(const std::string& path);

// An allow-list file: public key -> the name its line gives ("" when none).
// InvalidArgument for a file with no key at all.
StatusOr<std::map<std::string, std::string>> ReadCurveAllowList(const std::string& path);

}  // namespace tessera

#endif  // TESSERA_CORE_CURVE_KEYS_H_
