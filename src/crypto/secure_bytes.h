// Key material in memory: a move-only buffer that keeps its bytes out of swap (best effort), out
// of core dumps and out of forked children, and overwrites them before the memory is returned.
// The one container for data keys and key-encryption keys in volguard (crypto/kek.h,
// crypto/fscrypt.h): a key copied into a std::string stays behind in freed heap, in swap and in
// a core file; one kept here does not.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <span>
#include <string_view>

#include "common/status.h"

namespace volguard::crypto {

// Each buffer is a mapping of its own, rounded up to whole pages (page-aligned), so that the
// kernel's per-page controls apply to the key and to nothing else:
// - mlock: best effort. It fails beyond RLIMIT_MEMLOCK (8 MiB by default for a non-root user;
//   root has CAP_IPC_LOCK) and then the pages may be swapped out; locked() says which it was.
// - madvise(MADV_DONTDUMP): the pages are left out of core dumps (excluded_from_core_dumps()).
// - madvise(MADV_WIPEONFORK): a forked child sees zeros, not the key (best effort, Linux 4.14+).
// - OPENSSL_cleanse of the whole mapping before munlock and munmap (a cleanse the compiler
//   cannot drop as a dead store), on destruction and when a move assignment replaces the bytes.
// A page per buffer is meant for a handful of keys, not for bulk data.
//
// There is deliberately no operator<<, no conversion to or from std::string and no copy: a key
// is printed, logged or duplicated only by someone writing code to do exactly that.
class SecureBytes {
 public:
  SecureBytes() noexcept = default;
  // `size` zero bytes. Throws std::bad_alloc when no memory can be mapped, like any allocation.
  explicit SecureBytes(size_t size);
  // `size` bytes from OpenSSL's private generator (RAND_priv_bytes): a new data key. INTERNAL
  // `random_failed` when the generator fails (it should not; a key is never made of less).
  static Result<SecureBytes> random(size_t size);
  // A copy of `bytes` (which the caller then wipes, if it owns them).
  static SecureBytes copy_of(std::span<const unsigned char> bytes);
  static SecureBytes copy_of(std::string_view bytes);

  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;
  ~SecureBytes();

  unsigned char* data() noexcept { return data_; }
  const unsigned char* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<unsigned char> span() noexcept { return {data_, size_}; }
  std::span<const unsigned char> span() const noexcept { return {data_, size_}; }

  // Zeroes the bytes now (OPENSSL_cleanse); the size stays.
  void wipe() noexcept;
  // Keeps the first `size` bytes (no-op if `size` >= size()) and zeroes the rest: for a buffer
  // read into at its capacity, then cut to what was read.
  void truncate(size_t size) noexcept;
  // Equal size and bytes, compared in constant time (CRYPTO_memcmp).
  bool equals(std::span<const unsigned char> other) const noexcept;

  bool locked() const noexcept { return locked_; }
  bool excluded_from_core_dumps() const noexcept { return dont_dump_; }

  // Declared deleted so that streaming a key (a log line, a gtest message) does not compile.
  friend std::ostream& operator<<(std::ostream&, const SecureBytes&) = delete;

 private:
  // Cleanses, unlocks and unmaps; leaves the object empty.
  void release() noexcept;

  unsigned char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // whole pages, >= size_
  bool locked_ = false;
  bool dont_dump_ = false;
};

// For tests only: observes the destructor path. The observer is called with the whole mapping
// after it was cleansed and before it is unmapped (the one moment its bytes can still be read),
// so that a test proves the destructor zeroes the key without reading freed memory.
namespace secure_bytes_testing {
using ReleaseObserver = void (*)(const unsigned char* mapping, size_t mapped_size);
// nullptr removes the observer.
void set_release_observer(ReleaseObserver observer) noexcept;
}  // namespace secure_bytes_testing

}  // namespace volguard::crypto
