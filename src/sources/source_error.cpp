#include "sources/source_error.hpp"

namespace sluice {

SourceError::Kind SourceError::kind_of_sqlstate(std::string_view state) {
  auto in_class = [&](std::string_view prefix) { return state.substr(0, prefix.size()) == prefix; };
  if (state == "57014") return Kind::kTimeout;
  // Connection exceptions, insufficient resources, operator intervention (shutdown),
  // serialization failures, deadlocks, lock not available: worth a retry.
  if (in_class("08") || in_class("53") || in_class("57P") || state == "40001" ||
      state == "40P01" || state == "55P03") {
    return Kind::kUnavailable;
  }
  if (in_class("22")) return Kind::kInvalidValue;
  return Kind::kFailed;
}

}  // namespace sluice
