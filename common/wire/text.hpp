// Validation of the text fields our protocols carry (service names, peer names, reasons).
//
// Names end up in maps, log lines and policy files, so the wire forbids anything that could be
// confused for a separator or smuggle a line break into a log: names are 1..255 bytes of
// well-formed UTF-8 with no byte below 0x21 (controls and space) and no 0x7F (DEL). Reasons are
// free text for humans: printable UTF-8 (spaces allowed), at most 255 bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ztna::wire {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxReasonLength = 255;

// Well-formed UTF-8 per RFC 3629 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// A service, agent or connector name as the wire allows it.
bool is_valid_name(std::string_view s);

// A reason string as the wire allows it (may be empty).
bool is_valid_reason(std::string_view s);

// Makes any string a valid reason: invalid UTF-8 sequences and control characters become '?',
// and the result is cut to kMaxReasonLength bytes on a character boundary. Identity on strings
// that are already valid reasons, so decode -> encode round trips are byte-exact.
std::string sanitize_reason(std::string_view s);

} // namespace ztna::wire
