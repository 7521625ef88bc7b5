// Maps connection IDs we issued to the connection that owns them (RFC 9000 §5.2).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace ztna::quic {

template <typename Owner> class CidRouter {
public:
  // Makes `cids` exactly the set of IDs routed to `owner`.
  void assign(Owner* owner, const std::vector<std::string>& cids) {
    auto& mine = owned_[owner];
    if (mine == cids) return;
    // Only routes still ours: another owner may have claimed one of these IDs since.
    for (auto& old : mine) {
      auto r = routes_.find(old);
      if (r != routes_.end() && r->second == owner) routes_.erase(r);
    }
    for (auto& c : cids) routes_[c] = owner;
    mine = cids;
  }
  void remove(Owner* owner) {
    auto it = owned_.find(owner);
    if (it == owned_.end()) return;
    for (auto& c : it->second) {
      auto r = routes_.find(c);
      if (r != routes_.end() && r->second == owner) routes_.erase(r);
    }
    owned_.erase(it);
  }
  Owner* find(const std::string& cid) const {
    auto it = routes_.find(cid);
    return it == routes_.end() ? nullptr : it->second;
  }
  size_t size() const { return routes_.size(); }
  template <typename F> void for_each_owner(F&& f) const {
    for (auto& [owner, cids] : owned_) f(owner);
  }

private:
  std::unordered_map<std::string, Owner*> routes_;
  std::unordered_map<Owner*, std::vector<std::string>> owned_;
};

} // namespace ztna::quic
