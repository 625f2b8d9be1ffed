#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice {

// An error a client caused or must be told about, with the HTTP status and the stable `code`
// of DESIGN.md's JSON error body. Thrown while a request is validated (before any byte of the
// response went out); the router maps it to the response in one place.
// Extra members of a JSON error object: string members, e.g. {"sqlstate", "57014"}, and
// members whose value is an array of strings, e.g. {"datasets", ["orders", "users"]}.
struct ErrorFields : std::vector<std::pair<std::string, std::string>> {
  ErrorFields() = default;
  ErrorFields(std::initializer_list<value_type> fields) : vector(fields) {}

  std::vector<std::pair<std::string, std::vector<std::string>>> lists;
};

class ApiError : public std::runtime_error {
 public:
  using Fields = ErrorFields;

  ApiError(int status, std::string code, const std::string& message, Fields fields = {})
      : std::runtime_error(message),
        status_(status),
        code_(std::move(code)),
        fields_(std::move(fields)) {}

  int status() const { return status_; }
  const std::string& code() const { return code_; }
  const Fields& fields() const { return fields_; }

  // Extra response headers, e.g. {"Vary", "Accept-Encoding"} on a 406 from negotiation.
  ApiError& with_header(std::string name, std::string value) {
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  const Fields& headers() const { return headers_; }

 private:
  int status_;
  std::string code_;
  Fields fields_;
  Fields headers_;
};

}  // namespace sluice
