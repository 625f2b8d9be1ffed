// http must not use the pipeline.
#include "pipeline/export_pipeline.hpp"
