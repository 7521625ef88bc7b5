// The machine's interface addresses, the raw material of host candidates (DESIGN D4). Which of
// them make candidates is decided in ice::host_candidates(); this only asks the kernel.
#pragma once

#include "net/address.hpp"

#include <vector>

namespace ztna::io {

// Every IPv4 and IPv6 address of every interface that is up (port 0). Empty if getifaddrs()
// fails.
std::vector<Address> interface_addresses();

} // namespace ztna::io
