#include "common/hex.h"

#include <openssl/rand.h>

#include <random>
#include <vector>

namespace volguard {

std::string to_hex(std::span<const unsigned char> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  return to_hex(std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> rnd(bytes);
  if (bytes > 0 && RAND_bytes(rnd.data(), static_cast<int>(bytes)) != 1) {
    std::random_device dev;
    for (auto& b : rnd) b = static_cast<unsigned char>(dev());
  }
  return to_hex(rnd);
}

}  // namespace volguard
