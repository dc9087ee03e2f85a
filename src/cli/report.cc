#include "cli/report.h"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace volguard::cli {

namespace {

// Written once by main before any command runs, read by every failure path after.
std::atomic<ErrorFormat> g_format{ErrorFormat::kText};

// Replacement never valid UTF-8 cannot fail the dump: a message may quote a file's bytes.
std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

}  // namespace

ErrorFormat error_format_from_args(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-j" || a == "-ojson" || a == "-o=json" || a == "--output=json") return ErrorFormat::kJson;
    if ((a == "-o" || a == "--output") && i + 1 < argc && std::string_view(argv[i + 1]) == "json") {
      return ErrorFormat::kJson;
    }
  }
  return ErrorFormat::kText;
}

void choose_error_format(ErrorFormat f) { g_format.store(f); }
ErrorFormat error_format() { return g_format.load(); }

int report_failure(const Status& s, int exit_code) {
  if (error_format() == ErrorFormat::kJson) {
    std::cerr << json_text({{"code", code_name(s.code())}, {"reason", s.reason()}, {"message", s.message()}})
              << "\n";
  } else if (s.code() == Code::kInvalidArgument && s.reason() == "usage") {
    std::cerr << "error: " << s.message() << "\n";
  } else {
    std::cerr << "error: " << code_name(s.code()) << (s.reason().empty() ? "" : " " + s.reason()) << ": "
              << s.message() << "\n";
  }
  return exit_code;
}

int usage_failure(const std::string& message) {
  return report_failure(Status(Code::kInvalidArgument, "usage", message), kExitUsage);
}

void report_warning(std::string_view message) {
  if (error_format() == ErrorFormat::kJson) {
    std::cerr << json_text({{"warning", std::string(message)}}) << "\n";
  } else {
    std::cerr << "warning: " << message << "\n";
  }
}

std::string redact_values(std::string message, int argc, const char* const* argv,
                          const std::vector<std::string>& known_words) {
  // Each value is searched for in the message: bounded, so that a huge command line cannot
  // make reporting its error slow.
  if (argc > 256) {
    return "the command line could not be parsed (" + std::to_string(argc - 1) +
           " arguments; values are not shown)";
  }
  auto known = [&](const std::string& w) {
    return std::find(known_words.begin(), known_words.end(), w) != known_words.end();
  };
  // What a mistyped option name looks like: short, lower case. Anything else in the place of
  // a name ("--token$T", "--token:$T", "--SECRET") is shown as <value>.
  auto plausible_name = [](std::string_view n) {
    return !n.empty() && n.size() <= 24 &&
           std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
  };
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.empty()) continue;
    if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
      // "--token=VALUE": the name may show, the value may not.
      const auto eq = a.find('=');
      const std::string name = a.substr(0, eq);
      if (eq != std::string::npos) values.push_back(a.substr(eq + 1));
      if (!known(name) && !plausible_name(std::string_view(name).substr(2))) values.push_back(name.substr(2));
      continue;
    }
    if (a[0] == '-') {
      if (known(a)) continue;
      // "-tVALUE", or a cluster ("-jjVALUE") the parser may report from any of its letters:
      // the rest after the dash, and each tail of it long enough to matter.
      const std::string rest = a.substr(1);
      if (auto eq = rest.find('='); eq != std::string::npos) values.push_back(rest.substr(eq + 1));
      for (size_t k = 0; k + 4 <= rest.size(); ++k) values.push_back(rest.substr(k));
      if (rest.size() < 4) values.push_back(rest);
      continue;
    }
    if (!known(a)) values.push_back(a);
  }
  // Longest first, so that a value holding a shorter one is replaced whole.
  std::sort(values.begin(), values.end(), [](const auto& x, const auto& y) { return x.size() > y.size(); });
  const std::string mark = "<value>";
  for (const auto& v : values) {
    if (v.empty()) continue;
    for (size_t at = message.find(v); at != std::string::npos; at = message.find(v, at)) {
      // A one-character value is replaced only where it stands alone ("-o x"), not inside the
      // parser's own words; anything longer everywhere, even inside a word.
      const bool alone = (at == 0 || !is_word_char(message[at - 1])) &&
                         (at + v.size() == message.size() || !is_word_char(message[at + v.size()]));
      if (v.size() > 1 || alone) {
        message.replace(at, v.size(), mark);
        at += mark.size();
      } else {
        at += v.size();
      }
    }
  }
  return message;
}

}  // namespace volguard::cli
