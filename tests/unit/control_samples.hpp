// One or more instances of every control message, shared by the control codec tests.
#pragma once

#include <vector>

#include "net/address.hpp"
#include "wire/control_message.hpp"

namespace ztna::test {

inline std::vector<wire::ControlMessage> control_samples() {
  using namespace wire;
  const Address v4 = *Address::parse("198.51.100.20:40000");
  const Address v6 = *Address::parse("[2001:db8:1::20]:50000");
  return {
      Hello{Role::Agent, {}},
      Hello{Role::Connector, {"ssh", "postgres", "web-1.prod"}},
      Hello{Role::Connector, {}},
      ObservedAddress{v4},
      ObservedAddress{v6},
      OpenSession{7, "ssh"},
      OpenSession{0xFFFFFFFF, "caf\xC3\xA9"},
      OpenSession{8, "web", Candidates{0, 1, "abcd", "0123456789abcdefghij+/", {{1, 1, v4}}, 3}},
      SessionOffer{0x0123456789ABCDEFULL, "alice@example.org", "postgres", v4},
      SessionOffer{1, "bob", "ssh", v6},
      SessionAccept{0x0123456789ABCDEFULL},
      SessionReady{7, 0x0123456789ABCDEFULL, "connector-eu-1", v6, std::vector<uint8_t>(300, 0xA5)},
      SessionReady{8, 2, "c", v4, {1}},
      SessionReject{9, ErrorCode::UnknownService, "no such service: wiki"},
      SessionReject{10, ErrorCode::NoConnector, ""},
      SessionClosed{0x0123456789ABCDEFULL, ErrorCode::None},
      SessionClosed{3, ErrorCode::SessionGone},
      ErrorMessage{ErrorCode::NotAuthorized, "certificate not allowed to serve 'ssh'"},
      ErrorMessage{ErrorCode::Shutdown, ""},
      Candidates{0x0123456789ABCDEFULL, 1, "abcd", "0123456789abcdefghij+/", {}},
      Candidates{3, 2, "abcd", "0123456789abcdefghij+/", {{1, 2130706431, v4}}, 700},
      Candidates{2,
                 0xFFFFFFFF,
                 "Ufrag+/9",
                 std::string(64, 'p'),
                 {{1, 2130706431, v4},
                  {1, 2130706175, v6},
                  {2, 1694498815, v4},
                  {3, 1862270975, v6},
                  {4, 16777215, v4}}},
      StartChecks{0x0123456789ABCDEFULL, 7},
      ResumeSession{0x0123456789ABCDEFULL, "connector-eu-1", "postgres"},
      ResumeSession{1, "alice@example.org", "ssh"},
      SessionResumed{0x0123456789ABCDEFULL},
      PeerLost{2},
      Heartbeat{},
  };
}

} // namespace ztna::test
