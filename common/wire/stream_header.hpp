// The streams of an end-to-end session (DESIGN D5, D6; ALPN "ztna-session/2").
//
// The agent's first bidirectional stream (id 0) carries the session's authorization, signed by
// the intermediate (common/auth), and nothing else:
//   [u8 version = 1][u16 length, 1..kMaxAuthorizationStream][authorization]   then FIN
// The connector opens no backend before it has checked it.
//
// Every later bidirectional stream is one TCP connection through the overlay. Its first bytes
// name the service, which must be the service the session was authorized for:
//   [u8 version = 1][u8 name length, 1..255][name]
// Everything after the header is the TCP byte stream. A connector that cannot serve the stream
// resets it (RFC 9000 §19.4 RESET_STREAM, §19.5 STOP_SENDING) with a StreamError code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ztna::wire {

constexpr std::string_view kSessionAlpn = "ztna-session/2";
constexpr int64_t kAuthorizationStreamId = 0; // the client's first bidirectional stream
constexpr uint8_t kAuthorizationStreamVersion = 1;
constexpr size_t kMaxAuthorizationStream = 1280;
constexpr uint8_t kStreamHeaderVersion = 1;
// version + length + the longest name.
constexpr size_t kMaxStreamHeaderSize = 2 + 255;

// Application error codes for RESET_STREAM / STOP_SENDING on session streams. They start at
// 0x101 so they never collide with small codes that libraries use for their own purposes.
enum class StreamError : uint64_t {
  UnknownService = 0x101,
  BackendRefused = 0x102,
  BackendReset = 0x103,
  MalformedHeader = 0x104,
  Internal = 0x105,
  NotAuthorized = 0x106, // a service other than the session's, or the session is not authorized
};

const char* to_string(StreamError e);
// The StreamError for an application error code received from the peer, if it is one of ours.
std::optional<StreamError> stream_error_from_code(uint64_t code);

// Throws std::invalid_argument if service is not a valid name (text.hpp).
std::vector<uint8_t> encode_stream_header(std::string_view service);

// Parses the header from stream data that arrives in pieces.
class StreamHeaderDecoder {
public:
  enum class State { NeedMore, Done, Malformed };

  // Consumes header bytes from `bytes`. `consumed` is set to how many of these bytes belonged
  // to the header; when the result is Done, bytes[consumed..] are application data. Once Done
  // or Malformed, further calls return the same state and consume nothing.
  State feed(std::span<const uint8_t> bytes, size_t& consumed);

  State state() const { return state_; }
  // The service name; valid once Done.
  const std::string& service() const { return service_; }
  // Why the header was rejected; valid once Malformed.
  const std::string& error() const { return error_; }

private:
  State fail(std::string reason);

  State state_ = State::NeedMore;
  bool have_version_ = false;
  bool have_length_ = false;
  size_t length_ = 0;
  std::string service_;
  std::string error_;
};

// Stream 0's bytes for `authorization` (1..kMaxAuthorizationStream bytes; throws
// std::invalid_argument otherwise).
std::vector<uint8_t> encode_authorization_stream(std::span<const uint8_t> authorization);

// Reassembles stream 0. Bounded: it never holds more than one maximal authorization.
class AuthorizationStreamDecoder {
public:
  enum class State { NeedMore, Done, Malformed };
  // Feeds stream data; `fin` marks the end of the stream. Bytes after the authorization, or a
  // stream that ends early, are Malformed.
  State feed(std::span<const uint8_t> bytes, bool fin);
  State state() const { return state_; }
  std::span<const uint8_t> authorization() const;
  const std::string& error() const { return error_; }

private:
  State fail(std::string reason);
  State state_ = State::NeedMore;
  std::vector<uint8_t> buf_;
  std::string error_;
};

} // namespace ztna::wire
