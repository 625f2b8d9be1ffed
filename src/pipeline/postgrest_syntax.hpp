#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// PostgREST writes the operator into the value (`country=in.(DE,FR)`, `id=gte.5`); Sluice writes
// it into the name (`country=DE,FR`, `id.gte=5`). Taken as a Sluice value such a text would
// silently match nothing, so a filter given in the bare form `name=value` whose value starts with
// one of PostgREST's operators and a dot — `^(eq|neq|gt|gte|lt|lte|like|ilike|in|is|not|cs|cd)\.`
// — is refused with the Sluice spelling. A value that really starts so is written with an
// explicit operator, which takes it literally: `status.eq=in.transit`.
//
// Returns nullopt when `value` does not look like PostgREST's syntax, else a hint naming the
// Sluice form for filter `name`, e.g. "write country=DE,FR".
std::optional<std::string> postgrest_hint(std::string_view name, std::string_view value);

}  // namespace sluice
