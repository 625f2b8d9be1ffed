#pragma once

#include <cstddef>
#include <string>

namespace sluice {

// `bytes` bytes from OpenSSL's CSPRNG (RAND_bytes) as 2 * `bytes` lowercase hex digits: an
// unguessable, URL-safe identifier. Throws std::runtime_error when the generator fails (it is
// not seeded). Thread-safe.
std::string random_hex(std::size_t bytes);

}  // namespace sluice
