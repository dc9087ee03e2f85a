// The one version string: the server's identity.version, `volguard --version`, the CSI
// plugin's vendor_version and the image tag in deploy/ (checked by the manifests test).
#pragma once

namespace volguard {

inline constexpr char kVersion[] = "0.2.0";

}  // namespace volguard
