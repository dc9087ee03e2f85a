#include "crypto/secure_bytes.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace volguard::crypto {

namespace {

std::atomic<secure_bytes_testing::ReleaseObserver> g_release_observer{nullptr};

size_t page_size() {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

namespace secure_bytes_testing {
void set_release_observer(ReleaseObserver observer) noexcept { g_release_observer.store(observer); }
}  // namespace secure_bytes_testing

SecureBytes::SecureBytes(size_t size) {
  if (size == 0) return;
  const size_t page = page_size();
  if (size > SIZE_MAX - page) throw std::bad_alloc();
  const size_t mapped = (size + page - 1) / page * page;
  // An anonymous mapping of its own: zero-filled, page-aligned, and the madvise/mlock calls
  // below cover the key's pages only.
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<unsigned char*>(p);
  size_ = size;
  mapped_ = mapped;
  // Each of these is best effort and recorded: a key is still usable (and still wiped) without
  // them, and refusing to hold keys on a host with a small RLIMIT_MEMLOCK would help nobody.
  // The system call itself, not libc's mlock: AddressSanitizer intercepts mlock and munlock as
  // no-ops that report success, and locked() must say what the kernel did in every build.
  locked_ = ::syscall(SYS_mlock, p, mapped) == 0;
  dont_dump_ = ::madvise(p, mapped, MADV_DONTDUMP) == 0;
  (void)::madvise(p, mapped, MADV_WIPEONFORK);
}

Result<SecureBytes> SecureBytes::random(size_t size) {
  SecureBytes out(size);
  if (size > 0 && RAND_priv_bytes(out.data_, static_cast<int>(size)) != 1) {
    return Status(Code::kInternal, "random_failed", "OpenSSL's random generator failed");
  }
  return out;
}

SecureBytes SecureBytes::copy_of(std::span<const unsigned char> bytes) {
  SecureBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecureBytes SecureBytes::copy_of(std::string_view bytes) {
  return copy_of(std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
}

SecureBytes::SecureBytes(SecureBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)),
      dont_dump_(std::exchange(other.dont_dump_, false)) {}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
    locked_ = std::exchange(other.locked_, false);
    dont_dump_ = std::exchange(other.dont_dump_, false);
  }
  return *this;
}

SecureBytes::~SecureBytes() { release(); }

void SecureBytes::wipe() noexcept {
  if (data_ != nullptr) OPENSSL_cleanse(data_, mapped_);
}

void SecureBytes::truncate(size_t size) noexcept {
  if (size >= size_) return;
  OPENSSL_cleanse(data_ + size, mapped_ - size);
  size_ = size;
}

bool SecureBytes::equals(std::span<const unsigned char> other) const noexcept {
  if (other.size() != size_) return false;
  return size_ == 0 || CRYPTO_memcmp(data_, other.data(), size_) == 0;
}

void SecureBytes::release() noexcept {
  if (data_ == nullptr) return;
  // The whole mapping, not just size_: truncate() already zeroed the tail, and this costs the
  // same while leaving no assumption about what was written where.
  OPENSSL_cleanse(data_, mapped_);
  if (auto observer = g_release_observer.load()) observer(data_, mapped_);
  if (locked_) (void)::syscall(SYS_munlock, data_, mapped_);
  (void)::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
  locked_ = false;
  dont_dump_ = false;
}

}  // namespace volguard::crypto
