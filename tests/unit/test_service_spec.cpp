#include <catch2/catch.hpp>

#include <string>

#include "control/service_spec.hpp"

using ztna::parse_service_spec;
using ztna::ServiceSpec;

namespace {

ServiceSpec parse_ok(const std::string& text) {
  std::string error;
  auto spec = parse_service_spec(text, error);
  INFO(text << ": " << error);
  REQUIRE(spec);
  return *spec;
}

// Parses text that must be rejected; returns the error message.
std::string parse_error(const std::string& text) {
  std::string error;
  auto spec = parse_service_spec(text, error);
  INFO(text);
  CHECK_FALSE(spec);
  CHECK_FALSE(error.empty());
  CHECK(error.find('\n') == std::string::npos); // one line
  // The message names the input and shows the expected form.
  CHECK(error.find("NAME=tcp://HOST:PORT") != std::string::npos);
  return error;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("parse_service_spec accepts tcp and udp services", "[service_spec]") {
  auto tcp = parse_ok("db=tcp://10.0.0.5:5432");
  CHECK(tcp.name == "db");
  CHECK(tcp.proto == ServiceSpec::Proto::Tcp);
  CHECK(tcp.proto_name() == std::string("tcp"));
  CHECK(tcp.host == "10.0.0.5");
  CHECK(tcp.port == 5432);
  CHECK(tcp.endpoint() == "10.0.0.5:5432");

  auto udp = parse_ok("dns=udp://192.0.2.53:53");
  CHECK(udp.name == "dns");
  CHECK(udp.proto == ServiceSpec::Proto::Udp);
  CHECK(udp.proto_name() == std::string("udp"));
  CHECK(udp.host == "192.0.2.53");
  CHECK(udp.port == 53);
}

TEST_CASE("parse_service_spec accepts the port range edges", "[service_spec]") {
  CHECK(parse_ok("a=tcp://h:1").port == 1);
  CHECK(parse_ok("a=tcp://h:65535").port == 65535);
  CHECK(parse_ok("a=tcp://h:080").port == 80);
}

TEST_CASE("parse_service_spec accepts IPv6 literals in brackets", "[service_spec]") {
  auto s = parse_ok("ssh=tcp://[2001:db8::22]:22");
  CHECK(s.host == "2001:db8::22"); // stored without the brackets
  CHECK(s.port == 22);
  CHECK(s.endpoint() == "[2001:db8::22]:22");
  auto loop = parse_ok("q=udp://[::1]:4433");
  CHECK(loop.host == "::1");
  CHECK(loop.proto == ServiceSpec::Proto::Udp);
  CHECK(loop.endpoint() == "[::1]:4433");
}

TEST_CASE("parse_service_spec accepts host names", "[service_spec]") {
  auto s = parse_ok("web=tcp://app.internal.example:8080");
  CHECK(s.host == "app.internal.example");
  CHECK(s.port == 8080);
  CHECK(s.endpoint() == "app.internal.example:8080");
  CHECK(parse_ok("x=tcp://localhost:80").host == "localhost");
}

TEST_CASE("parse_service_spec accepts unusual but printable names", "[service_spec]") {
  CHECK(parse_ok("my-db.prod_1=tcp://h:1").name == "my-db.prod_1");
  CHECK(parse_ok("caf\xc3\xa9=tcp://h:1").name == "caf\xc3\xa9"); // UTF-8
  CHECK(parse_ok(std::string(255, 'n') + "=tcp://h:1").name.size() == 255);
}

TEST_CASE("parse_service_spec rejects a missing '=' or name", "[service_spec]") {
  auto e = parse_error("db");
  CHECK(contains(e, "'db'"));
  CHECK(contains(e, "missing '='"));
  CHECK(contains(parse_error("tcp://10.0.0.5:5432"), "missing '='"));
  CHECK(contains(parse_error(""), "missing '='"));
  CHECK(contains(parse_error("=tcp://10.0.0.5:5432"), "missing service name"));
}

TEST_CASE("parse_service_spec rejects bad names", "[service_spec]") {
  for (std::string bad : {std::string("my db"), std::string("db\t"), std::string("a\nb"),
                          std::string("\x7f"), std::string("x\x01"), std::string("\0x", 2)}) {
    auto e = parse_error(bad + "=tcp://h:1");
    INFO(bad);
    CHECK(contains(e, "control character"));
  }
  CHECK(contains(parse_error(std::string(256, 'n') + "=tcp://h:1"), "longer than 255"));
  // Control characters are shown escaped, so the message stays on one line.
  CHECK(contains(parse_error("a\nb=tcp://h:1"), "'a\\x0ab=tcp://h:1'"));
  CHECK(contains(parse_error("a\x1b[2Jb=tcp://h:1"), "'a\\x1b[2Jb=tcp://h:1'"));
}

TEST_CASE("parse_service_spec rejects a bad protocol", "[service_spec]") {
  for (const char* text : {"db=http://h:80", "db=TCP://h:80", "db=tcp:/h:80", "db=tcp//h:80",
                           "db=h:80", "db=", "db=sctp://h:80"}) {
    INFO(text);
    CHECK(contains(parse_error(text), "protocol must be tcp:// or udp://"));
  }
}

TEST_CASE("parse_service_spec rejects a missing port or host", "[service_spec]") {
  CHECK(contains(parse_error("db=tcp://10.0.0.5"), "missing port"));
  CHECK(contains(parse_error("db=tcp://"), "missing port"));
  CHECK(contains(parse_error("db=tcp://10.0.0.5:"), "port must be 1-65535"));
  CHECK(contains(parse_error("db=tcp://:5432"), "missing host"));
  CHECK(contains(parse_error("db=tcp://[]:5432"), "missing host"));
}

TEST_CASE("parse_service_spec rejects ports out of range or not numeric", "[service_spec]") {
  for (const char* text :
       {"db=tcp://h:0", "db=tcp://h:65536", "db=tcp://h:99999999999", "db=tcp://h:-1",
        "db=tcp://h:+80", "db=tcp://h:80x", "db=tcp://h:x80", "db=tcp://h: 80", "db=tcp://h:80 ",
        "db=udp://[::1]:0", "db=udp://[::1]:65536", "db=udp://[::1]:http"}) {
    INFO(text);
    CHECK(contains(parse_error(text), "port must be 1-65535"));
  }
}

TEST_CASE("parse_service_spec rejects IPv6 without brackets", "[service_spec]") {
  CHECK(contains(parse_error("db=tcp://::1:5432"), "[brackets]"));
  CHECK(contains(parse_error("db=tcp://2001:db8::1:5432"), "[brackets]"));
  CHECK(contains(parse_error("db=tcp://[::1]5432"), "bad IPv6 address"));
  CHECK(contains(parse_error("db=tcp://[::1:5432"), "bad IPv6 address"));
  CHECK(contains(parse_error("db=tcp://[::1]"), "bad IPv6 address"));
}

TEST_CASE("parse_service_spec reports errors for the input it was given", "[service_spec]") {
  std::string error = "stale";
  auto spec = parse_service_spec("web=tcp://h:0", error);
  CHECK_FALSE(spec);
  CHECK(error.rfind("'web=tcp://h:0': ", 0) == 0);
}
