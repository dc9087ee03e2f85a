// Filesystem types: their names as users type them and the smallest volume of each (sizes in
// general: common/size.h).
#include <string>

#include "common/text.h"
#include "driver/driver.h"

namespace volguard::driver {

const char* fs_name(FsType fs) {
  switch (fs) {
    case FsType::kExt4:
      return "ext4";
    case FsType::kXfs:
      return "xfs";
  }
  return "ext4";
}

const char* encryption_name(Encryption e) { return e == Encryption::kFscrypt ? "fscrypt" : "none"; }

uint64_t min_volume_size(FsType fs) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  return fs == FsType::kXfs ? 300 * kMiB : 16 * kMiB;
}

Result<FsType> parse_fs(const std::string& s) {
  const std::string t = to_lower(s);
  if (t == "ext4") return FsType::kExt4;
  if (t == "xfs") return FsType::kXfs;
  return Status(Code::kInvalidArgument, "invalid_fs",
                "unsupported filesystem \"" + s + "\" (expected ext4 or xfs)");
}

}  // namespace volguard::driver
