// storage may use core.
#include "core/byte_sink.hpp"
