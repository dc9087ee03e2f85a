// Opening a file that holds a secret, apart from the rest of common/text.h so that layers built
// without volguard_core (the crypto layer) share the one check instead of repeating it.
#pragma once

#include <string>

#include "common/fd.h"
#include "common/status.h"

namespace volguard {

// INVALID_ARGUMENT `reason`: "cannot <verb> <path>: <strerror(err)>" — the one wording of file
// errors, so that every layer names a failed path the same way.
Status file_error(const char* reason, const char* verb, const std::string& path, int err);

// Opens a file that holds a secret (shared secret, private key, audit key, key-encryption key)
// for reading. Refused with FAILED_PRECONDITION `secret_file_exposed` when group or others may
// read or write it: a secret anyone on the node can read is no secret, and one they can write
// lets them choose it. The mode is checked on the opened fd, so a swap between check and read
// cannot slip through. Other failures are file_error("file_unreadable", ...). The caller reads
// the fd itself: into a std::string (read_private_file) or into locked memory (crypto/).
Result<UniqueFd> open_private_file(const std::string& path);

}  // namespace volguard
