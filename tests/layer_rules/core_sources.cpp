// core must not use sources.
#include "sources/source.hpp"
