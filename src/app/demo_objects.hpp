#pragma once

#include <filesystem>
#include <iosfwd>

namespace sluice {

// Fills `folder` (the demo's object store) with deterministic sample objects, unless a previous
// run completed it (its marker under the reserved ".sluice/" folder is there):
//   album/IMG_0001.jpg … IMG_0050.jpg  incompressible "photos" of 1–3 MiB (a fixed PRNG)
//   docs/*.txt                          text that deflates well
//   docs/Grüße aus Köln – 東京.txt       a non-ASCII name
// Throws std::runtime_error when the folder cannot be written.
void prepare_demo_objects(const std::filesystem::path& folder, std::ostream& log);

}  // namespace sluice
