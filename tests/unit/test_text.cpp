#include <catch2/catch.hpp>

#include <string>

#include "wire/text.hpp"

using namespace ztna::wire;
using namespace std::string_literals;

TEST_CASE("valid names", "[text]") {
  CHECK(is_valid_name("ssh"));
  CHECK(is_valid_name("db-1.prod_eu/primary"));
  CHECK(is_valid_name("!"));
  CHECK(is_valid_name("~"));
  CHECK(is_valid_name("caf\xC3\xA9"));      // é
  CHECK(is_valid_name("\xF0\x9F\x94\x91")); // U+1F511
  CHECK(is_valid_name(std::string(255, 'n')));
}

TEST_CASE("invalid names", "[text]") {
  CHECK_FALSE(is_valid_name(""));
  CHECK_FALSE(is_valid_name(std::string(256, 'n')));
  CHECK_FALSE(is_valid_name("a b"));
  CHECK_FALSE(is_valid_name(" "));
  CHECK_FALSE(is_valid_name("a\tb"));
  CHECK_FALSE(is_valid_name("line\n"));
  CHECK_FALSE(is_valid_name("a\x7F"));
  CHECK_FALSE(is_valid_name("a\0b"s));
  CHECK_FALSE(is_valid_name("\x1F"));
}

TEST_CASE("names must be well-formed UTF-8", "[text]") {
  CHECK_FALSE(is_valid_name("\xC3"));             // truncated sequence
  CHECK_FALSE(is_valid_name("\xC0\xAF"));         // overlong '/'
  CHECK_FALSE(is_valid_name("\xE0\x80\xAF"));     // overlong 3-byte
  CHECK_FALSE(is_valid_name("\xED\xA0\x80"));     // UTF-16 surrogate
  CHECK_FALSE(is_valid_name("\xF4\x90\x80\x80")); // above U+10FFFF
  CHECK_FALSE(is_valid_name("\xFF"));
  CHECK_FALSE(is_valid_name("\x80"));       // lone continuation byte
  CHECK_FALSE(is_valid_name("\xE2\x82"));   // truncated 3-byte
  CHECK(is_valid_utf8("\xF4\x8F\xBF\xBF")); // U+10FFFF itself
  CHECK(is_valid_utf8("\xED\x9F\xBF"));     // U+D7FF, just below surrogates
  CHECK(is_valid_utf8(""));
}

TEST_CASE("reasons", "[text]") {
  CHECK(is_valid_reason(""));
  CHECK(is_valid_reason("backend refused the connection"));
  CHECK(is_valid_reason(std::string(255, 'r')));
  CHECK_FALSE(is_valid_reason(std::string(256, 'r')));
  CHECK_FALSE(is_valid_reason("two\nlines"));
  CHECK_FALSE(is_valid_reason("tab\there"));
  CHECK_FALSE(is_valid_reason("\x7F"));
  CHECK_FALSE(is_valid_reason("\xC3("));
}

TEST_CASE("sanitize_reason is the identity on valid reasons", "[text]") {
  for (std::string s : {""s, "ok"s, "caf\xC3\xA9 closed"s, std::string(255, 'x')})
    CHECK(sanitize_reason(s) == s);
}

TEST_CASE("sanitize_reason replaces controls and bad UTF-8, and truncates", "[text]") {
  CHECK(sanitize_reason("a\nb\r\x7F") == "a?b??");
  CHECK(sanitize_reason("x\xC3(y") == "x?(y");
  CHECK(sanitize_reason("\xFF\xFE") == "??");
  CHECK(sanitize_reason(std::string(300, 'a')) == std::string(255, 'a'));
  // A multi-byte character that would straddle the limit is dropped whole.
  const std::string straddle = std::string(254, 'a') + "\xC3\xA9";
  CHECK(sanitize_reason(straddle) == std::string(254, 'a'));
  for (std::string s : {"\n\n\n"s, straddle, "\xED\xA0\x80 x"s, std::string(400, '\t')})
    CHECK(is_valid_reason(sanitize_reason(s)));
}
