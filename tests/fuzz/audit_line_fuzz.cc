// The audit line parser (`audit verify`, `audit show`) and the chain verifier: any bytes as a
// log line and as a whole log file, no crash; a line that parses re-renders to a line that
// parses to the same fields (in its own format).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "audit/audit.h"

using namespace volguard::audit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string line(reinterpret_cast<const char*>(data), size);
  auto rec = parse_line(line);
  if (rec.is_ok()) {
    const bool json = !line.empty() && line.front() == '{';
    auto again = parse_line(json ? to_json_line(*rec) : to_logfmt(*rec));
    if (!again.is_ok() || again->fields != rec->fields) std::abort();
  }
  // The same bytes as a chained log file.
  static const std::string path = "/tmp/volguard-fuzz-audit-" + std::to_string(::getpid()) + ".log";
  {
    std::ofstream out(path, std::ios::trunc | std::ios::binary);
    out << line;
  }
  VerifyReport report = verify_chain(path, std::string(32, 'c'));
  if (!report.ok && report.problem.empty()) std::abort();
  return 0;
}
