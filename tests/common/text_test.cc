#include "common/text.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

namespace volguard {
namespace {

TEST(DurationTest, ParsesUnits) {
  EXPECT_EQ(parse_duration("30s")->count(), 30);
  EXPECT_EQ(parse_duration("15m")->count(), 900);
  EXPECT_EQ(parse_duration("24h")->count(), 86400);
  EXPECT_EQ(parse_duration("7d")->count(), 7 * 86400);
  EXPECT_EQ(parse_duration("1y")->count(), 365 * 86400);
  EXPECT_EQ(parse_duration("0")->count(), 0);
  for (const char* bad : {"", "h", "-1s", "1w", "1.5h", "1h30m", "99999999999999999999y"}) {
    EXPECT_FALSE(parse_duration(bad).is_ok()) << bad;
  }
}

TEST(Base64UrlTest, RoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    EXPECT_EQ(base64url_decode(base64url_encode(s)).value(), s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_FALSE(base64url_decode("Zm9v=").has_value());   // padding
  EXPECT_FALSE(base64url_decode("Zm+v").has_value());    // standard alphabet
  EXPECT_FALSE(base64url_decode("Zm 9v").has_value());   // whitespace
  EXPECT_FALSE(base64url_decode("Z").has_value());       // impossible length
  EXPECT_FALSE(base64url_decode("Zh").has_value());      // non-zero trailing bits
  EXPECT_TRUE(base64url_decode("Zg").has_value());
}

TEST(TextTest, Rfc3339) { EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00Z"); }

// The qualified-name encoding is injective: the last '/' always separates, whatever the
// qualifier and the name contain.
TEST(QualifiedNameTest, EscapingIsInjectiveAndRoundTrips) {
  EXPECT_EQ(qualify_name("corp", "eu/alice"), "corp/eu%2Falice");
  EXPECT_EQ(qualify_name("corp/eu", "alice"), "corp/eu/alice");
  EXPECT_NE(qualify_name("corp", "eu/alice"), qualify_name("corp/eu", "alice"));
  EXPECT_EQ(qualify_name("a", "%2F"), "a/%252F");  // a literal "%2F" is not an escaped '/'
  EXPECT_NE(qualify_name("a", "%2F"), qualify_name("a", "/"));
  for (std::string name : {"alice", "eu/alice", "%", "%25", "a/b/c", "100%/x", "é"}) {
    std::string q = qualify_name("https://idp.example/realms/x", name);
    auto parts = split_qualified(q);
    ASSERT_TRUE(parts.has_value()) << q;
    EXPECT_EQ(parts->first, "https://idp.example/realms/x") << q;
    auto back = unescape_name(parts->second);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(*back, name);
  }
  EXPECT_FALSE(split_qualified("alice").has_value());
  // Lower-case hex decodes too; escape_name gives the one canonical form.
  EXPECT_EQ(escape_name(unescape_name("a%2fb").value()), "a%2Fb");
}

TEST(QualifiedNameTest, MalformedEscapesAreRefused) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c : {Case{"", "is empty"}, Case{"a/b", "contains '/'"},
                        Case{"a%", "not followed by two hex digits"},
                        Case{"a%2", "not followed by two hex digits"},
                        Case{"a%zz", "not followed by two hex digits"},
                        Case{"a%0Ab", "contains control characters"},
                        Case{"a%7F", "contains control characters"},
                        Case{"a\tb", "contains control characters"}}) {
    auto r = unescape_name(c.text);
    ASSERT_FALSE(r.is_ok()) << c.text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().reason(), "bad_name");
    EXPECT_NE(r.status().message().find(c.why), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(has_control_chars(std::string("a\0b", 3)));
  EXPECT_FALSE(has_control_chars("plain name/with %"));
}

class PrivateFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/volguard-text-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

// A secret group or others may read or write is refused with its mode and the fix; 0600 and
// 0400 are read.
TEST_F(PrivateFilesTest, ReadPrivateFileRefusesGroupOrOtherAccess) {
  const std::string path = dir_ + "/secret";
  ASSERT_TRUE(write_file(path, "s3cret", 0600).is_ok());
  for (unsigned mode : {0644u, 0660u, 0606u, 0640u, 0620u, 0604u, 0602u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = read_private_file(path);
    ASSERT_FALSE(r.is_ok()) << std::oct << mode;
    EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
    EXPECT_EQ(r.status().reason(), "secret_file_exposed");
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    EXPECT_EQ(r.status().message().rfind(path + ": mode " + text, 0), 0u) << r.status().message();
    EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos);
  }
  for (unsigned mode : {0600u, 0400u, 0700u, 0611u}) {  // execute bits expose nothing
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = read_private_file(path);
    ASSERT_TRUE(r.is_ok()) << std::oct << mode << ": " << r.status().to_string();
    EXPECT_EQ(*r, "s3cret");
  }
  auto missing = read_private_file(dir_ + "/none");
  EXPECT_EQ(missing.status().reason(), "file_unreadable");
}

// What volguard creates for its data is 0700 whatever the umask; what exists is left alone.
TEST_F(PrivateFilesTest, MakePrivateDirIs0700) {
  mode_t old = ::umask(0);
  Status made = make_private_dir(dir_ + "/a/b/data/");
  ::umask(old);
  ASSERT_TRUE(made.is_ok()) << made.to_string();
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/a/b/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::mkdir((dir_ + "/shared").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((dir_ + "/shared").c_str(), 0755), 0);
  EXPECT_TRUE(make_private_dir(dir_ + "/shared").is_ok());
  ASSERT_EQ(::stat((dir_ + "/shared").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_TRUE(write_file(dir_ + "/file", "x", 0600).is_ok());
  Status not_dir = make_private_dir(dir_ + "/file");
  EXPECT_EQ(not_dir.reason(), "dir_uncreatable");
  EXPECT_NE(not_dir.message().find(dir_ + "/file"), std::string::npos);
}

// Secrets and keys lose only their line end (a space may be part of a secret); tokens, pids and
// tool output lose any trailing whitespace.
TEST(TrimTest, NewlinesOnlyOrAllTrailingWhitespace) {
  EXPECT_EQ(trim_trailing_newlines("s3cret\n"), "s3cret");
  EXPECT_EQ(trim_trailing_newlines("s3cret\r\n"), "s3cret");
  EXPECT_EQ(trim_trailing_newlines("s3cret\n\n\r"), "s3cret");
  EXPECT_EQ(trim_trailing_newlines("s3cret \n"), "s3cret ");
  EXPECT_EQ(trim_trailing_newlines("\ns3\ncret"), "\ns3\ncret");  // only the end
  EXPECT_EQ(trim_trailing_newlines("\r\n"), "");
  EXPECT_EQ(trim_trailing_newlines(""), "");

  EXPECT_EQ(trim_trailing_whitespace("eyJ.x.y \r\n"), "eyJ.x.y");
  EXPECT_EQ(trim_trailing_whitespace("1234\t\n "), "1234");
  EXPECT_EQ(trim_trailing_whitespace("  lead"), "  lead");
  EXPECT_EQ(trim_trailing_whitespace(" \n\t\r"), "");
  EXPECT_EQ(trim_trailing_whitespace(""), "");
}

TEST(NameTest, CharsetLengthAndFirstCharacter) {
  const std::vector<std::string> good_names = {"a",  "pvc-0001", "My_Vol.2", "9lives",
                                               "a.", "x-",       std::string(kMaxNameLength, 'n')};
  for (const std::string& good : good_names) {
    EXPECT_TRUE(is_valid_name(good)) << good;
    EXPECT_TRUE(check_name("name", good).is_ok()) << good;
  }
  struct Case {
    std::string name;
    const char* why;
  };
  for (const Case& c :
       {Case{"", "name: is required"},
        Case{std::string(kMaxNameLength + 1, 'n'), "name: must be at most 128"},
        Case{".hidden", "must not start with '.' or '-'"},
        Case{"-rf", "must not start with '.' or '-'"},
        Case{"a b", "may contain only letters, digits, '.', '-', '_'"},
        Case{"../x", "must not start"}, Case{"a/b", "may contain only"},
        Case{"x\n", "may contain only"}, Case{std::string("a\0b", 3), "may contain only"},
        Case{"caf\xc3\xa9", "may contain only"}}) {
    EXPECT_FALSE(is_valid_name(c.name)) << c.name;
    const Status s = check_name("name", c.name);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << c.name;
    EXPECT_EQ(s.reason(), "invalid_name");
    EXPECT_NE(s.message().find(c.why), std::string::npos) << s.message();
  }
  EXPECT_EQ(check_name("snapshot", "").reason(), "invalid_snapshot");
  EXPECT_EQ(check_name("snapshot", "").message(), "snapshot: is required");
  EXPECT_TRUE(is_name_char('_'));
  EXPECT_FALSE(is_name_char('/'));
}

TEST(ParseCountTest, DigitsOnlyBelowTwoToThe63) {
  EXPECT_EQ(parse_count("0"), uint64_t{0});
  EXPECT_EQ(parse_count("10"), uint64_t{10});
  EXPECT_EQ(parse_count("9223372036854775807"), uint64_t{INT64_MAX});
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1e3", "ten", "9223372036854775808",
                          "18446744073709551616", "99999999999999999999999"}) {
    EXPECT_FALSE(parse_count(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace volguard
