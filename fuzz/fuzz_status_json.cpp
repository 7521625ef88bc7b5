// Status documents hold text from outside: certificate names (validated), peers' close reasons,
// request lines from the status socket, file names. Rendering must never throw, whatever bytes
// those strings hold, and must produce JSON that parses back. Builds status-shaped documents
// from the input and renders them with io::json_text, as every daemon's status reply does;
// also runs the reason sanitizer the QUIC layer applies to CONNECTION_CLOSE reasons.
#include "fuzz_check.hpp"
#include "io/json_text.hpp"
#include "wire/text.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // Split the input into fields at 0xff bytes.
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || static_cast<uint8_t>(text[i]) == 0xff) {
      fields.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  auto field = [&](size_t i) { return fields[i % fields.size()]; };

  const std::string reason = ztna::wire::sanitize_reason(field(1));
  FUZZ_CHECK(ztna::wire::is_valid_reason(reason));
  FUZZ_CHECK(reason.size() <= ztna::wire::kMaxReasonLength);

  nlohmann::json j;
  j["name"] = field(0);
  j["control"] = {{"state", "backoff"},
                  {"last_error", "peer closed the connection (code 5, \"" + field(1) + "\")"},
                  {"last_error_sanitized", reason}};
  j["sessions"] = nlohmann::json::array();
  for (size_t i = 0; i < fields.size() && i < 8; ++i)
    j["sessions"].push_back({{"agent", field(i)}, {"service", field(i + 1)}, {"n", i}});
  j["counters"][field(2)] = size;
  j["error"] = "no exposed service named '" + field(3) + "'";

  const std::string out = ztna::io::json_text(j);
  FUZZ_CHECK(ztna::wire::is_valid_utf8(out));
  auto back = nlohmann::json::parse(out, nullptr, false);
  FUZZ_CHECK(!back.is_discarded());
  FUZZ_CHECK(back["sessions"].size() == j["sessions"].size());
  FUZZ_CHECK(back["control"]["last_error_sanitized"] == reason);
  // Strings that were valid UTF-8 come back unchanged.
  if (ztna::wire::is_valid_utf8(field(0))) FUZZ_CHECK(back["name"] == field(0));
  (void)ztna::io::json_text(j, 2);
  return 0;
}
