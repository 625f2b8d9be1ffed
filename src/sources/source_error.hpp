#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice {

// A source (database) failed. The kind says what a caller can do about it; what a client is
// told (an HTTP status, a job's error) is decided by the feature that ran the query, not here.
class SourceError : public std::runtime_error {
 public:
  enum class Kind : std::uint8_t {
    kFailed,        // the query failed: bad SQL, a broken row, anything not listed below
    kInvalidValue,  // the database rejected a value it was given (SQLSTATE class 22)
    kTimeout,       // the statement ran past its timeout (57014)
    kUnavailable,   // connection lost, database overloaded or shutting down, a serialization
                    // conflict: the same request may succeed when retried
    kBusy,          // every connection of the pool stayed taken past the pool's timeout
    kCancelled,     // Sluice cancelled it (client gone, shutdown)
  };

  SourceError(Kind kind, const std::string& message, std::string sqlstate = {})
      : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)) {}
  // The kind follows from the SQLSTATE (kFailed when there is none).
  // (By reference: a moved-from argument could be read after the move.)
  explicit SourceError(const std::string& message, const std::string& sqlstate = {})
      : SourceError(kind_of_sqlstate(sqlstate), message, sqlstate) {}

  Kind kind() const { return kind_; }
  // The SQLSTATE when the database reported one ("57014"), else "".
  const std::string& sqlstate() const { return sqlstate_; }

  static Kind kind_of_sqlstate(std::string_view state);

 private:
  Kind kind_;
  std::string sqlstate_;
};

}  // namespace sluice
