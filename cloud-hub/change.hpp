// Change: an object of the hub's API whose view changed, as the controller and UpdateRollouts note
// it for watchers (watch.hpp) and for the other hub instances (change_feed.hpp).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <tuple>

namespace flotilla::hub {

// An object whose view changed, for watchers (GET ...?watch=true): they read its view again,
// and a view that is gone means the object was deleted. Rollouts (OTA) are noted by
// UpdateRollouts, the other kinds by the Controller.
struct Change {
  enum class Kind { kNode, kWorkload, kDevice, kRollout };
  Kind kind;
  std::string name;
  bool operator<(const Change& o) const { return std::tie(kind, name) < std::tie(o.kind, o.name); }
  bool operator==(const Change& o) const = default;
};
using ChangeListener = std::function<void(const std::set<Change>&)>;

}  // namespace flotilla::hub
