#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace sluice {

// An error a client caused or must be told about, with the HTTP status and the stable `code`
// of DESIGN.md's JSON error body. Thrown while a request is validated (before any byte of the
// response went out); the router maps it to the response in one place.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

// A source (database) failed: query error, lost connection, interrupted.
class SourceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sluice
