// Whole-file reads for the small text and JSON files Tessera takes as input (config.json,
// tokenizer files, chat templates, prompts). Model weights are memory-mapped instead.
#pragma once

#include <string>

namespace tessera {

// The bytes of the file at `path`. Throws tessera::Error "cannot read '<path>'".
std::string read_file(const std::string& path);

}  // namespace tessera
