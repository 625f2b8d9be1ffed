// files must not use the archive feature (shared pieces, like Range, live in http).
#include "features/archives/archive_handler.hpp"
