// storage must not use encode.
#include "encode/encoder.hpp"
