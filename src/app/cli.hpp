#pragma once

namespace sluice {

// Parses the command line (serve, demo, export, check-config) and runs the command.
// Returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace sluice
