// encode must not use sources.
#include "sources/source.hpp"
