// Fuzzes the config loader: any text must either load or throw ConfigError whose message
// starts with the file name (FILE:LINE: KEY: problem) — never crash, hang or throw anything else.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    sluice::parse_config(text, "/nonexistent/fuzz.toml");
  } catch (const sluice::ConfigError& error) {
    if (!std::string_view(error.what()).starts_with("/nonexistent/fuzz.toml")) std::abort();
  }
  return 0;
}
