// Fuzzes the cube format's readers (cube/cube_format.hpp): what a server reads from the store
// must never crash it or answer malformed JSON, whatever the bytes.
// Input: a manifest (JSON) up to the first NUL byte, then bytes taken as records of its schema.
// Invariants:
// - parse_cube_manifest, parse_cube_pointer and parse_cube_file_header return or throw
//   CubeFormatError, nothing else;
// - render_record of any record_size bytes returns false (no data, nothing appended) or appends
//   one valid JSON object, or throws CubeFormatError;
// - a manifest that parses serialises back to a manifest that parses to the same layout;
// - parse_cube_decimal of the input as text, when it parses, renders back (append_decimal) to a
//   text that parses to the same value.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "cube/cube_format.hpp"

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "invariant broken: " << what << '\n';
  std::abort();
}

void check_records(const sluice::CubeSchema& schema, std::string_view bytes) {
  if (schema.record_size == 0) fail("a schema with records of 0 bytes");
  for (std::size_t at = 0; at + schema.record_size <= bytes.size() && at < 64 * 1024; at += schema.record_size) {
    std::string out;
    try {
      if (!schema.render_record(bytes.substr(at, schema.record_size), out)) {
        if (!out.empty()) fail("no data, yet something was appended");
        continue;
      }
    } catch (const sluice::CubeFormatError&) {
      continue;
    }
    boost::system::error_code ec;
    const boost::json::value value = boost::json::parse(out, ec);
    if (ec || !value.is_object()) fail("a record rendered as invalid JSON: " + out);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view text = input.substr(0, split);
  const std::string_view records = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  try {
    const sluice::CubeManifest manifest = sluice::parse_cube_manifest(text);
    const sluice::CubeManifest again = sluice::parse_cube_manifest(sluice::cube_manifest_json(manifest));
    if (again.schema.record_size != manifest.schema.record_size || again.files.size() != manifest.files.size()) {
      fail("a manifest did not round-trip");
    }
    check_records(manifest.schema, records);
  } catch (const sluice::CubeFormatError&) {
  }
  try {
    (void)sluice::parse_cube_pointer(text);
  } catch (const sluice::CubeFormatError&) {
  }
  try {
    const sluice::CubeFileHeader header = sluice::parse_cube_file_header(input);
    if (header.data_offset > input.size()) fail("a header past the end of the input");
  } catch (const sluice::CubeFormatError&) {
  }
  for (int scale : {0, 2, 18}) {
    if (auto value = sluice::parse_cube_decimal(text, scale)) {
      std::string rendered;
      sluice::append_decimal(rendered, *value, scale);
      if (sluice::parse_cube_decimal(rendered, scale) != value) fail("decimal " + rendered + " did not round-trip");
    }
  }
  return 0;
}
