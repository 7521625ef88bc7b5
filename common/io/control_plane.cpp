#include "io/control_plane.hpp"

#include <spdlog/spdlog.h>

namespace ztna::io {

ControlPlane::ControlPlane(boost::asio::io_context& io, Endpoint& endpoint,
                           ControlClient::Options base,
                           std::vector<IntermediateEndpoint> intermediates, Mode mode,
                           Listener listener)
    : intermediates_(std::move(intermediates)), mode_(mode), listener_(std::move(listener)) {
  if (intermediates_.empty()) throw std::invalid_argument("ControlPlane: no intermediate");
  for (size_t i = 0; i < intermediates_.size(); ++i) {
    auto options = base;
    options.intermediate = intermediates_[i].address;
    options.server_name = intermediates_[i].name;
    clients_.push_back(std::make_unique<ControlClient>(
        io, endpoint, std::move(options),
        ControlClient::Listener{
            [this, i] { on_connected(i); },
            [this, i](const wire::ControlMessage& m) {
              if (listener_.message) listener_.message(i, m);
            },
            [this, i](const std::string& why) { on_lost(i, why); }}));
  }
}

void ControlPlane::start() {
  for (auto& c : clients_)
    c->start();
}

void ControlPlane::stop() {
  for (auto& c : clients_)
    c->stop();
}

void ControlPlane::set_tls(quic::TlsIdentityPtr tls) {
  for (auto& c : clients_)
    c->set_tls(tls);
}

std::optional<size_t> ControlPlane::index_of(const Address& from) const {
  for (size_t i = 0; i < intermediates_.size(); ++i)
    if (intermediates_[i].address == from) return i;
  return std::nullopt;
}

std::optional<size_t> ControlPlane::home() const {
  if (mode_ == Mode::Home) return home_;
  for (size_t i = 0; i < clients_.size(); ++i)
    if (connected(i)) return i;
  return std::nullopt;
}

bool ControlPlane::send(size_t i, const wire::ControlMessage& m) {
  return i < clients_.size() && clients_[i]->send(m);
}

void ControlPlane::set_probing(size_t i, bool probing) {
  if (i < clients_.size()) clients_[i]->set_probing(probing);
}

Address ControlPlane::observed_address() const {
  auto h = home();
  return h ? clients_[*h]->observed_address() : Address{};
}

uint64_t ControlPlane::connects() const {
  uint64_t n = 0;
  for (auto& c : clients_)
    n += c->connects();
  return n;
}

void ControlPlane::on_connected(size_t i) {
  if (mode_ == Mode::Home) {
    if (home_ && *home_ != i) {
      // Another one won the race first: this one is not needed.
      clients_[i]->stop();
      return;
    }
    const bool rehomed = had_home_;
    rehomes_ += rehomed;
    had_home_ = true;
    home_ = i;
    for (size_t j = 0; j < clients_.size(); ++j)
      if (j != i) clients_[j]->stop();
    if (clients_.size() > 1)
      spdlog::info("control: home is {} ({}; RTT {:.1f} ms){}", address(i).to_string(),
                   intermediates_[i].name, clients_[i]->rtt_ms(),
                   rehomed ? ", after losing the previous one" : "");
  }
  if (listener_.connected) listener_.connected(i);
}

void ControlPlane::on_lost(size_t i, const std::string& why) {
  if (mode_ == Mode::Home) {
    if (home_ != i) return; // a racer that lost: nothing depended on it
    home_.reset();
    // The race again, at once, among all the others; the lost one retries with its backoff.
    if (clients_.size() > 1) {
      spdlog::warn("control: lost home {}; looking for the nearest other intermediate",
                   address(i).to_string());
      for (size_t j = 0; j < clients_.size(); ++j)
        if (j != i && clients_[j]->state() == ControlClient::State::Stopped) clients_[j]->start();
    }
  }
  if (listener_.lost) listener_.lost(i, why);
}

std::string ControlPlane::describe_state() const {
  if (auto h = home()) return "connected to " + address(*h).to_string();
  for (auto& c : clients_)
    if (!c->last_error().empty()) return c->last_error();
  return clients_.front()->state_name();
}

nlohmann::json ControlPlane::status() const {
  auto h = home();
  nlohmann::json j = clients_[h.value_or(0)]->status();
  j["connects"] = connects();
  if (clients_.size() > 1) {
    j["mode"] = mode_ == Mode::Home ? "home" : "all";
    j["intermediates"] = nlohmann::json::array();
    for (auto& c : clients_)
      j["intermediates"].push_back(c->status());
    if (mode_ == Mode::Home) j["rehomes"] = rehomes_;
  }
  return j;
}

} // namespace ztna::io
