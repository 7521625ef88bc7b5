#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "bytes.hpp"
#include "control_samples.hpp"
#include "wire/control_message.hpp"

using namespace ztna::wire;
using ztna::Address;
using ztna::test::bytes;
using ztna::test::Bytes;

namespace {

std::span<const uint8_t> payload_of(const Bytes& frame) {
  return std::span<const uint8_t>(frame).subspan(kControlHeaderSize);
}

// Decodes the payload of a hand-built frame body; returns the error ("" on success).
std::string decode_error(ControlType type, const Bytes& payload) {
  std::string error;
  auto m = decode_control_payload(static_cast<uint8_t>(type), payload, error);
  if (m) return "";
  CHECK_FALSE(error.empty());
  return error;
}

} // namespace

TEST_CASE("control: every sample round-trips byte-exactly", "[control]") {
  for (const auto& m : ztna::test::control_samples()) {
    INFO(message_name(m));
    const Bytes frame = encode_control(m);
    REQUIRE(frame.size() >= kControlHeaderSize);
    CHECK(frame[0] == kControlVersion);
    CHECK(frame[1] == static_cast<uint8_t>(control_type(m)));
    CHECK(static_cast<size_t>((frame[2] << 8) | frame[3]) == frame.size() - kControlHeaderSize);

    std::string error;
    auto decoded = decode_control_payload(frame[1], payload_of(frame), error);
    REQUIRE(decoded);
    CHECK(error.empty());
    CHECK(*decoded == m);
    CHECK(encode_control(*decoded) == frame);
  }
}

TEST_CASE("control: golden bytes", "[control]") {
  CHECK(encode_control(OpenSession{7, "ssh"}) == bytes({4, 3, 0, 8, 0, 0, 0, 7, 3, 's', 's', 'h'}));
  CHECK(encode_control(SessionAccept{0x0102030405060708ULL}) ==
        bytes({4, 5, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}));
  CHECK(encode_control(Hello{Role::Connector, {"a", "bc"}}) ==
        bytes({4, 1, 0, 7, 2, 2, 1, 'a', 2, 'b', 'c'}));
  CHECK(encode_control(ObservedAddress{*Address::parse("203.0.113.5:3478")}) ==
        bytes({4, 2, 0, 7, 4, 203, 0, 113, 5, 0x0D, 0x96}));
  CHECK(encode_control(SessionClosed{9, ErrorCode::SessionGone}) ==
        bytes({4, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0, 9, 0, 6}));
  CHECK(encode_control(ErrorMessage{ErrorCode::Shutdown, "bye"}) ==
        bytes({4, 9, 0, 6, 0, 8, 3, 'b', 'y', 'e'}));
  CHECK(encode_control(StartChecks{5, 2}) ==
        bytes({4, 11, 0, 12, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2}));
  CHECK(encode_control(ResumeSession{5, "c1", "ssh"}) ==
        bytes({4, 12, 0, 15, 0, 0, 0, 0, 0, 0, 0, 5, 2, 'c', '1', 3, 's', 's', 'h'}));
  CHECK(encode_control(SessionResumed{6}) == bytes({4, 13, 0, 8, 0, 0, 0, 0, 0, 0, 0, 6}));
  CHECK(encode_control(PeerLost{7}) == bytes({4, 14, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7}));
  CHECK(encode_control(Heartbeat{}) == bytes({4, 15, 0, 0}));
  const std::string pwd(22, 'p');
  Bytes candidates =
      bytes({4, 10, 0, 68, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 4, 'u', 'f', 'r', 'g', 22});
  candidates.insert(candidates.end(), pwd.begin(), pwd.end());
  const Bytes entries = bytes({2, 1,    0x7E, 0, 0,    0xFF, 4,  203, 0, 113, 5,    0x0D, 0x96,
                               1, 0x64, 0,    0, 0xFF, 4,    10, 0,   0, 2,   0x11, 0x5C});
  candidates.insert(candidates.end(), entries.begin(), entries.end());
  candidates.push_back(0x2B); // NAT: endpoint-independent, sequential, address-dependent
  candidates.push_back(0);    // padding length
  candidates.push_back(0);
  Candidates m{5,
               2,
               "ufrg",
               pwd,
               {{1, 0x7E0000FF, *Address::parse("203.0.113.5:3478")},
                {1, 0x640000FF, *Address::parse("10.0.0.2:4444")}}};
  m.nat = 0x2B;
  CHECK(encode_control(m) == candidates);
  m.nat = 0x60; // mapping 6: unknown
  CHECK_THROWS_AS(encode_control(m), std::invalid_argument);
}

TEST_CASE("control: Candidates checks its fields", "[control]") {
  const std::string pwd(22, 'p');
  auto payload = [&](std::string ufrag, std::string password, uint8_t count, Bytes tail) {
    Bytes b = bytes({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1});
    b.push_back(static_cast<uint8_t>(ufrag.size()));
    b.insert(b.end(), ufrag.begin(), ufrag.end());
    b.push_back(static_cast<uint8_t>(password.size()));
    b.insert(b.end(), password.begin(), password.end());
    b.push_back(count);
    b.insert(b.end(), tail.begin(), tail.end());
    b.push_back(0); // NAT unknown
    b.push_back(0); // no padding
    b.push_back(0);
    return b;
  };
  CHECK(decode_error(ControlType::Candidates, payload("abcd", pwd, 0, {})).empty());
  CHECK(decode_error(ControlType::Candidates, payload("abc", pwd, 0, {})) ==
        "Candidates: invalid ufrag");
  CHECK(decode_error(ControlType::Candidates, payload("ab:d", pwd, 0, {})) ==
        "Candidates: invalid ufrag");
  CHECK(decode_error(ControlType::Candidates, payload("abcd", std::string(21, 'p'), 0, {})) ==
        "Candidates: invalid password");
  CHECK(decode_error(ControlType::Candidates, payload("abcd", pwd, 17, {})) ==
        "Candidates: more than 16 candidates");
  CHECK(decode_error(ControlType::Candidates,
                     payload("abcd", pwd, 1, bytes({5, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0, 80}))) ==
        "Candidates: unknown candidate type 5");
  CHECK(decode_error(ControlType::Candidates,
                     payload("abcd", pwd, 1, bytes({0, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0, 80}))) ==
        "Candidates: unknown candidate type 0");
  Bytes padded = payload("abcd", pwd, 0, {});
  padded.back() = 2;
  padded.insert(padded.end(), {0, 0});
  CHECK(decode_error(ControlType::Candidates, padded).empty());
  padded.back() = 1;
  CHECK(decode_error(ControlType::Candidates, padded) == "Candidates: padding is not all zeros");
  padded.pop_back();
  CHECK(decode_error(ControlType::Candidates, padded) == "Candidates: truncated");
  Candidates sized{1, 1, "abcd", pwd, {{1, 1, Address::ipv4(1, 2)}}, 100};
  CHECK(encoded_size(sized) == encode_control(sized).size());
  sized.candidates.push_back({2, 2, *Address::parse("[2001:db8::1]:5")});
  CHECK(encoded_size(sized) == encode_control(sized).size());
  CHECK_THROWS_AS(encode_control(Candidates{1, 1, "a b c", pwd, {}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(Candidates{1, 1, "abcd", pwd, {{9, 1, Address::ipv4(1, 2)}}}),
                  std::invalid_argument);
}

TEST_CASE("control: type codes and names", "[control]") {
  const char* names[] = {"Hello",          "ObservedAddress", "OpenSession",   "SessionOffer",
                         "SessionAccept",  "SessionReady",    "SessionReject", "SessionClosed",
                         "ErrorMessage",   "Candidates",      "StartChecks",   "ResumeSession",
                         "SessionResumed", "PeerLost",        "Heartbeat"};
  const ControlMessage one_of_each[] = {
      Hello{Role::Agent, {}},
      ObservedAddress{Address::ipv4(1, 2)},
      OpenSession{1, "s"},
      SessionOffer{1, "a", "s", Address::ipv4(1, 2)},
      SessionAccept{1},
      SessionReady{1, 1, "c", Address::ipv4(1, 2), {7}},
      SessionReject{1, ErrorCode::Internal, ""},
      SessionClosed{1, ErrorCode::None},
      ErrorMessage{ErrorCode::Malformed, ""},
      Candidates{1, 1, "abcd", std::string(22, 'p'), {}},
      StartChecks{1, 1},
      ResumeSession{1, "c", "s"},
      SessionResumed{1},
      PeerLost{1},
      Heartbeat{},
  };
  for (size_t i = 0; i < std::size(one_of_each); ++i) {
    CHECK(std::string(message_name(one_of_each[i])) == names[i]);
    CHECK(static_cast<size_t>(control_type(one_of_each[i])) == i + 1);
  }
}

TEST_CASE("control: truncation at every byte offset is rejected", "[control]") {
  for (const auto& m : ztna::test::control_samples()) {
    const Bytes frame = encode_control(m);
    const auto payload = payload_of(frame);
    // An OpenSession cut right after its service is one without candidates: valid. (The frame
    // header says how long the payload is, so a cut inside a frame is a sender's bug anyway.)
    size_t valid_cut = SIZE_MAX;
    if (const auto* open = std::get_if<OpenSession>(&m); open && open->candidates)
      valid_cut =
          encode_control(OpenSession{open->request_id, open->service}).size() - kControlHeaderSize;
    for (size_t n = 0; n < payload.size(); ++n) {
      if (n == valid_cut) continue;
      INFO(message_name(m) << " cut to " << n << " payload bytes");
      std::string error;
      CHECK_FALSE(decode_control_payload(frame[1], payload.first(n), error));
      CHECK(error.find("truncated") != std::string::npos);
    }
  }
}

TEST_CASE("control: trailing bytes inside a frame are rejected", "[control]") {
  for (const auto& m : ztna::test::control_samples()) {
    const Bytes frame = encode_control(m);
    Bytes payload(frame.begin() + kControlHeaderSize, frame.end());
    payload.push_back(0);
    INFO(message_name(m));
    std::string error;
    CHECK_FALSE(decode_control_payload(frame[1], payload, error));
    // What follows an OpenSession's service is its candidates (version 4): one byte is a
    // truncated Candidates body, and after the candidates nothing may follow.
    const bool open_without_candidates =
        std::holds_alternative<OpenSession>(m) && !std::get<OpenSession>(m).candidates;
    CHECK(error == std::string(message_name(m)) +
                       (open_without_candidates ? ": truncated" : ": 1 trailing bytes"));
  }
}

TEST_CASE("control: OpenSession carries round-1 candidates (version 4)", "[control]") {
  const Address v4 = *Address::parse("198.51.100.20:40000");
  OpenSession m{7, "ssh"};
  m.candidates = Candidates{0, 1, "abcdefgh", std::string(24, 'p'), {{1, 2130706431, v4}}, 40};
  const Bytes frame = encode_control(m);
  std::string error;
  auto back =
      decode_control_payload(frame[1], {frame.begin() + kControlHeaderSize, frame.end()}, error);
  REQUIRE(back);
  CHECK(std::get<OpenSession>(*back) == m);
  // Only session 0, generation 1: the request's session has no id yet, and it is round 1.
  for (auto [session, generation] : {std::pair<uint64_t, uint32_t>{5, 1}, {0, 2}}) {
    OpenSession bad = m;
    bad.candidates->session_id = session;
    bad.candidates->generation = generation;
    CHECK_THROWS_AS(encode_control(bad), std::invalid_argument);
    Bytes payload(frame.begin() + kControlHeaderSize, frame.end());
    // The u64 session id follows request id (4), service (1 + 3): byte 8 .. 15.
    payload[15] = static_cast<uint8_t>(session);
    payload[16 + 3] = static_cast<uint8_t>(generation);
    CHECK_FALSE(decode_control_payload(frame[1], payload, error));
    CHECK(error == "OpenSession: OpenSession candidates must have session 0 and generation 1");
  }
}

TEST_CASE("control: unknown types are errors", "[control]") {
  for (int type : {0, 16, 0x7F, 0xFF}) {
    std::string error;
    CHECK_FALSE(decode_control_payload(static_cast<uint8_t>(type), bytes({0, 0, 0, 0}), error));
    CHECK(error == "unknown control message type " + std::to_string(type));
  }
}

TEST_CASE("control: Hello field checks", "[control]") {
  CHECK(decode_error(ControlType::Hello, bytes({0, 0})) == "Hello: unknown role 0");
  CHECK(decode_error(ControlType::Hello, bytes({3, 0})) == "Hello: unknown role 3");
  CHECK(decode_error(ControlType::Hello, bytes({1, 1, 1, 'x'})) ==
        "Hello: agent Hello lists services");
  CHECK(decode_error(ControlType::Hello, bytes({2, 1, 0})) == "Hello: invalid service name");
  CHECK(decode_error(ControlType::Hello, bytes({2, 1, 3, 'a', ' ', 'b'})) ==
        "Hello: invalid service name");
  CHECK(decode_error(ControlType::Hello, bytes({2, 1, 2, 'a', 0x7F})) ==
        "Hello: invalid service name");
  CHECK(decode_error(ControlType::Hello, bytes({2, 1, 2, 'a', '\n'})) ==
        "Hello: invalid service name");
  CHECK(decode_error(ControlType::Hello, bytes({2, 2, 1, 'a', 1, 'a'})) ==
        "Hello: duplicate service");
  CHECK(decode_error(ControlType::Hello, bytes({2, 2, 1, 'a'})) == "Hello: truncated");

  // 65 services is over the limit even when every name is present.
  Bytes many = bytes({2, 65});
  for (int i = 0; i < 65; ++i)
    many.insert(many.end(),
                {2, static_cast<uint8_t>('A' + i / 26), static_cast<uint8_t>('a' + i % 26)});
  CHECK(decode_error(ControlType::Hello, many) == "Hello: more than 64 services");
}

TEST_CASE("control: address family checks", "[control]") {
  CHECK(decode_error(ControlType::ObservedAddress, bytes({5, 1, 2, 3, 4, 0, 80})) ==
        "ObservedAddress: address has unknown family 5");
  CHECK(decode_error(ControlType::ObservedAddress, bytes({0, 1, 2, 3, 4, 0, 80})) ==
        "ObservedAddress: address has unknown family 0");
  // A v6 family with only v4-sized data is truncation, not an unknown family.
  CHECK(decode_error(ControlType::ObservedAddress, bytes({6, 1, 2, 3, 4, 0, 80})) ==
        "ObservedAddress: truncated");
  // A v4 family followed by v6-sized data leaves trailing bytes.
  Bytes v4_long = bytes({4, 1, 2, 3, 4, 0, 80});
  v4_long.resize(19, 0);
  CHECK(decode_error(ControlType::ObservedAddress, v4_long) ==
        "ObservedAddress: 12 trailing bytes");
  CHECK(decode_error(ControlType::SessionOffer,
                     bytes({0, 0, 0, 0, 0, 0, 0, 1, 1, 'a', 1, 's', 7, 1, 2, 3, 4, 0, 80})) ==
        "SessionOffer: agent address has unknown family 7");
}

TEST_CASE("control: names in other messages", "[control]") {
  CHECK(decode_error(ControlType::OpenSession, bytes({0, 0, 0, 1, 0})) ==
        "OpenSession: invalid service name");
  CHECK(decode_error(ControlType::SessionOffer,
                     bytes({0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 's', 4, 1, 2, 3, 4, 0, 80})) ==
        "SessionOffer: invalid agent name");
  CHECK(decode_error(ControlType::SessionReady,
                     bytes({0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, ' ', 4, 1, 2, 3, 4, 0, 80})) ==
        "SessionReady: invalid connector name");
  CHECK(decode_error(ControlType::SessionReady, bytes({0, 0,   0, 1, 0, 0, 0, 0, 0,  0, 0, 1,
                                                       1, 'c', 4, 1, 2, 3, 4, 0, 80, 0, 0})) ==
        "SessionReady: authorization of 0 bytes");
  CHECK(decode_error(ControlType::SessionReady, bytes({0, 0,   0, 1, 0, 0, 0, 0, 0,  0, 0, 1,
                                                       1, 'c', 4, 1, 2, 3, 4, 0, 80, 0, 2, 9})) ==
        "SessionReady: truncated");
}

TEST_CASE("control: error codes and reasons", "[control]") {
  CHECK(decode_error(ControlType::SessionReject, bytes({0, 0, 0, 1, 0, 11, 0})) ==
        "SessionReject: unknown error code 11");
  CHECK(decode_error(ControlType::ErrorMessage, bytes({0xFF, 0xFF, 0})) ==
        "ErrorMessage: unknown error code 65535");
  CHECK(decode_error(ControlType::SessionClosed, bytes({0, 0, 0, 0, 0, 0, 0, 1, 1, 0})) ==
        "SessionClosed: unknown error code 256");
  CHECK(decode_error(ControlType::ErrorMessage, bytes({0, 1, 3, 'a', '\n', 'b'})) ==
        "ErrorMessage: reason is not printable UTF-8");
  CHECK(decode_error(ControlType::ErrorMessage, bytes({0, 1, 2, 0xC3, '('})) ==
        "ErrorMessage: reason is not printable UTF-8");
  CHECK(decode_error(ControlType::ErrorMessage, bytes({0, 1, 2, 'o', 'k'})).empty());
  CHECK(decode_error(ControlType::ErrorMessage, bytes({0, 1, 0})).empty());
}

TEST_CASE("control: encoder sanitizes reasons", "[control]") {
  const Bytes frame = encode_control(ErrorMessage{ErrorCode::Internal, "a\nb"});
  std::string error;
  auto m = decode_control_payload(frame[1], payload_of(frame), error);
  REQUIRE(m);
  CHECK(std::get<ErrorMessage>(*m).reason == "a?b");

  const Bytes long_frame =
      encode_control(SessionReject{1, ErrorCode::NotAuthorized, std::string(1000, 'r')});
  m = decode_control_payload(long_frame[1], payload_of(long_frame), error);
  REQUIRE(m);
  CHECK(std::get<SessionReject>(*m).reason == std::string(255, 'r'));
}

TEST_CASE("control: encoder refuses messages the decoder would reject", "[control]") {
  const Address a = Address::ipv4(0x7F000001, 1);
  CHECK_THROWS_AS(encode_control(OpenSession{1, ""}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(OpenSession{1, "a b"}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(OpenSession{1, std::string(256, 'a')}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(SessionOffer{1, "a", "s", Address{}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(SessionReady{1, 1, "", a, {7}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(SessionReady{1, 1, "c", a, {}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(SessionReady{1, 1, "c", a, std::vector<uint8_t>(1281, 1)}),
                  std::invalid_argument);
  CHECK_THROWS_AS(encode_control(ObservedAddress{Address{}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(Hello{Role::Agent, {"ssh"}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(Hello{static_cast<Role>(3), {}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(Hello{Role::Connector, {"x", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(encode_control(SessionClosed{1, static_cast<ErrorCode>(99)}),
                  std::invalid_argument);
  std::vector<std::string> services;
  for (int i = 0; i < 65; ++i)
    services.push_back("s" + std::to_string(i));
  CHECK_THROWS_AS(encode_control(Hello{Role::Connector, services}), std::invalid_argument);
  services.pop_back();
  CHECK_NOTHROW(encode_control(Hello{Role::Connector, services}));
}

TEST_CASE("control: payload size limit is exactly 4096 bytes", "[control]") {
  // role + count + 62 names of 65 bytes (66 on the wire) + one 1-byte name = 4096 bytes.
  std::vector<std::string> services;
  for (int i = 0; i < 62; ++i) {
    std::string name(65, 'a');
    name[0] = static_cast<char>('A' + i / 26);
    name[1] = static_cast<char>('a' + i % 26);
    services.push_back(name);
  }
  services.push_back("z");
  const Hello max{Role::Connector, services};
  const Bytes frame = encode_control(max);
  CHECK(frame.size() == kMaxControlFrame);
  std::string error;
  auto m = decode_control_payload(frame[1], payload_of(frame), error);
  REQUIRE(m);
  CHECK(*m == ControlMessage{max});

  services.back() = "zz";
  CHECK_THROWS_AS(encode_control(Hello{Role::Connector, services}), std::invalid_argument);
}

TEST_CASE("control: error code and role names", "[control]") {
  CHECK(std::string(to_string(ErrorCode::None)) == "none");
  CHECK(std::string(to_string(ErrorCode::Malformed)) == "malformed");
  CHECK(std::string(to_string(ErrorCode::UnsupportedVersion)) == "unsupported version");
  CHECK(std::string(to_string(ErrorCode::UnknownService)) == "unknown service");
  CHECK(std::string(to_string(ErrorCode::NoConnector)) == "no connector");
  CHECK(std::string(to_string(ErrorCode::NotAuthorized)) == "not authorized");
  CHECK(std::string(to_string(ErrorCode::SessionGone)) == "session gone");
  CHECK(std::string(to_string(ErrorCode::Internal)) == "internal error");
  CHECK(std::string(to_string(ErrorCode::Shutdown)) == "shutdown");
  CHECK(std::string(to_string(ErrorCode::Replaced)) == "replaced");
  CHECK(std::string(to_string(ErrorCode::Limited)) == "limit reached");
  CHECK(std::string(to_string(static_cast<ErrorCode>(1234))) == "unknown error code");
  CHECK(std::string(to_string(Role::Agent)) == "agent");
  CHECK(std::string(to_string(Role::Connector)) == "connector");
  for (uint16_t v = 0; v <= 10; ++v)
    CHECK(is_known_error_code(v));
  CHECK_FALSE(is_known_error_code(11));
}
