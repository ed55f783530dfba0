#include "serve/base64.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace tessera {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Each byte's 6-bit value; -1 for a byte outside the alphabet.
constexpr std::array<int8_t, 256> MakeTable() {
  std::array<int8_t, 256> table{};
  for (int i = 0; i < 256; ++i) table[i] = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kTable = MakeTable();

}  // namespace

StatusOr<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) {
    return InvalidArgumentError("base64 of " + std::to_string(text.size()) +
                                " characters: expected a multiple of 4 (with '=' padding)");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    uint32_t group = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(text[i + k]);
      if (k >= 4 - padding) continue;  // '=' of the padding
      const int v = kTable[c];
      if (v < 0) {
        return InvalidArgumentError("base64: expected a character of A-Z a-z 0-9 + / at offset " +
                                    std::to_string(i + k) + ", found byte " + std::to_string(c));
      }
      group |= static_cast<uint32_t>(v) << (18 - 6 * k);
    }
    const int bytes = 3 - padding;
    if ((padding == 1 && (group & 0xff)) || (padding == 2 && (group & 0xffff))) {
      return InvalidArgumentError("base64: non-zero padding bits at offset " + std::to_string(i));
    }
    for (int b = 0; b < bytes; ++b) out.push_back(static_cast<char>((group >> (16 - 8 * b)) & 0xff));
  }
  return out;
}

std::string EncodeBase64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t group = 0;
    for (size_t b = 0; b < n; ++b) group |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + b])) << (16 - 8 * b);
    for (size_t k = 0; k < 4; ++k) out.push_back(k <= n ? kAlphabet[(group >> (18 - 6 * k)) & 63] : '=');
  }
  return out;
}

}  // namespace tessera
