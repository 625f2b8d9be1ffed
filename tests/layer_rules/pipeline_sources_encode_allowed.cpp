// pipeline may use sources and encode.
#include "encode/encoder.hpp"
#include "sources/source.hpp"
