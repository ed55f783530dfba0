#include "core/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <zmq.h>

#include "core/file_util.h"

namespace tessera {
namespace {

constexpr char kSecretTag[] = "curve-secret-key";
constexpr char kPublicTag[] = "curve-public-key";
constexpr char kZ85Alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// One line of a key file, cut into its words, with the column (1-based) where each begins.
struct KeyLine {
  int number = 0;
  std::vector<std::string> words;
  std::vector<int> columns;
};

KeyLine SplitLine(const std::string& text, int number) {
  KeyLine line;
  line.number = number;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
    if (i >= text.size() || text[i] == '#') break;
    const size_t begin = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\r') ++i;
    line.words.push_back(text.substr(begin, i - begin));
    line.columns.push_back(static_cast<int>(begin) + 1);
  }
  return line;
}

// The most a key file may hold: an allow-list of about 15,000 keys. A bigger
// file (say /dev/zero given by mistake) is refused, not read without end.
constexpr size_t kMaxKeyFileBytes = 1 << 20;

// The lines of `path` that hold words; InvalidArgument when it cannot be read.
StatusOr<std::vector<KeyLine>> ReadKeyLines(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return InvalidArgumentError(path + ": cannot read the key file: " + std::strerror(errno));
  std::string text(kMaxKeyFileBytes + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (file.bad()) return InvalidArgumentError(path + ": cannot read the key file: " + std::strerror(errno));
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kMaxKeyFileBytes) {
    return InvalidArgumentError(path + ": not a key file: larger than " + std::to_string(kMaxKeyFileBytes) + " bytes");
  }
  std::vector<KeyLine> lines;
  std::istringstream in(text);
  std::string raw;
  for (int number = 1; std::getline(in, raw); ++number) {
    KeyLine line = SplitLine(raw, number);
    if (!line.words.empty()) lines.push_back(std::move(line));
  }
  return lines;
}

std::string Where(const std::string& path, const KeyLine& line, size_t word) {
  const int column = word < line.columns.size() ? line.columns[word] : 1;
  return path + ":" + std::to_string(line.number) + ":" + std::to_string(column) + ": ";
}

// Checks the key in word 1 of `line` is 40 Z85 characters that decode.
Status CheckZ85Key(const std::string& path, const KeyLine& line) {
  if (line.words.size() < 2) return InvalidArgumentError(Where(path, line, 0) + line.words[0] + " has no key after it");
  const std::string& key = line.words[1];
  if (key.size() != kCurveKeyChars) {
    return InvalidArgumentError(Where(path, line, 1) + "a CURVE key is " + std::to_string(kCurveKeyChars) +
                                " Z85 characters, got " + std::to_string(key.size()));
  }
  for (size_t i = 0; i < key.size(); ++i) {
    if (std::strchr(kZ85Alphabet, key[i]) == nullptr || key[i] == '\0') {
      return InvalidArgumentError(path + ":" + std::to_string(line.number) + ":" +
                                  std::to_string(line.columns[1] + static_cast<int>(i)) +
                                  ": the key is not Z85 text (character '" + std::string(1, key[i]) + "')");
    }
  }
  uint8_t bytes[32];
  if (zmq_z85_decode(bytes, key.c_str()) == nullptr) {
    return InvalidArgumentError(Where(path, line, 1) + "the key is not valid Z85");
  }
  return OkStatus();
}

// Checks the line is "`tag` KEY ..." and its key is valid.
Status CheckKeyLine(const std::string& path, const KeyLine& line, const std::string& tag) {
  const std::string& got = line.words[0];
  if (got == tag) return CheckZ85Key(path, line);
  const std::string where = Where(path, line, 0) + "expected " + tag + ", got ";
  if (got == kSecretTag || got == kPublicTag) {
    return InvalidArgumentError(where + got +
                                (tag == kSecretTag ? " (a public key where a secret key is needed)"
                                                   : " (a secret key where a public key is needed)"));
  }
  // A long word may be a bare secret key: never echo it into a log.
  if (got.size() > 20) return InvalidArgumentError(where + "a word of " + std::to_string(got.size()) + " characters");
  return InvalidArgumentError(where + "'" + got + "'");
}

// The one key line of a single-key file.
StatusOr<KeyLine> ReadSingleKey(const std::string& path, const std::string& tag) {
  ASSIGN_OR_RETURN(std::vector<KeyLine> lines, ReadKeyLines(path));
  if (lines.empty()) return InvalidArgumentError(path + ":1:1: expected " + tag + " KEY, the file has no key");
  if (lines.size() > 1) {
    return InvalidArgumentError(Where(path, lines[1], 0) + "expected one key line, found another");
  }
  RETURN_IF_ERROR(CheckKeyLine(path, lines[0], tag));
  return lines[0];
}

bool ValidKeyName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Creates `path` with `mode` and writes `text`; never replaces a file.
Status WriteNewFile(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return FailedPreconditionError(path + " exists; keygen never overwrites a key");
    return UnavailableError("cannot create " + path + ": " + std::strerror(errno));
  }
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!written) return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  return OkStatus();
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

StatusOr<CurveKeyPair> GenerateCurveKeyPair() {
  if (!CurveAvailable()) return FailedPreconditionError("this libzmq was built without CURVE");
  char public_key[kCurveKeyChars + 1];
  char secret_key[kCurveKeyChars + 1];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return InternalError(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{public_key, secret_key};
}

Status WriteCurveKeyPair(const CurveKeyPair& keys, const std::string& dir, const std::string& name) {
  if (!ValidKeyName(name)) {
    return InvalidArgumentError("--name: '" + name + "' is not a key name ([A-Za-z0-9._-]+)");
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  const std::string secret_path = dir + "/" + name + ".secret";
  const std::string public_path = dir + "/" + name + ".pub";
  // Check both first, so an existing .pub does not leave a new .secret behind.
  for (const std::string& path : {secret_path, public_path}) {
    if (FileExists(path)) return FailedPreconditionError(path + " exists; keygen never overwrites a key");
  }
  RETURN_IF_ERROR(WriteNewFile(secret_path, std::string(kSecretTag) + " " + keys.secret_key + "\n", 0600));
  RETURN_IF_ERROR(WriteNewFile(public_path, std::string(kPublicTag) + " " + keys.public_key + " " + name + "\n", 0644));
  return SyncDirectory(dir);
}

StatusOr<CurveKeyPair> ReadCurveSecretKey(const std::string& path) {
  ASSIGN_OR_RETURN(KeyLine line, ReadSingleKey(path, kSecretTag));
  char public_key[kCurveKeyChars + 1];
  if (zmq_curve_public(public_key, line.words[1].c_str()) != 0) {
    return InvalidArgumentError(Where(path, line, 1) + "no public key derives from this secret key");
  }
  return CurveKeyPair{public_key, line.words[1]};
}

StatusOr<std::string> ReadCurvePublicKey(const std::string& path) {
  ASSIGN_OR_RETURN(KeyLine line, ReadSingleKey(path, kPublicTag));
  return line.words[1];
}

StatusOr<std::map<std::string, std::string>> ReadCurveAllowList(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<KeyLine> lines, ReadKeyLines(path));
  std::map<std::string, std::string> allowed;
  for (const KeyLine& line : lines) {
    RETURN_IF_ERROR(CheckKeyLine(path, line, kPublicTag));
    allowed[line.words[1]] = line.words.size() > 2 ? line.words[2] : "";
  }
  if (allowed.empty()) return InvalidArgumentError(path + ":1:1: the allow-list has no " + kPublicTag + " line");
  return allowed;
}

}  // namespace tessera
