// archives must not use the export feature.
#include "features/exports/export_handler.hpp"
