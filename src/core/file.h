// Whole-file reads for the small text and JSON files Tessera takes as input (config.json,
// tokenizer files, chat templates, prompts), and the system's memory figure. Model weights
// are memory-mapped instead.
#pragma once

#include <cstddef>
#include <string>

namespace tessera {

// The bytes of the file at `path`. Throws tessera::Error "cannot read '<path>'".
std::string read_file(const std::string& path);

// MemAvailable of /proc/meminfo (free memory plus what the kernel can reclaim, such as the
// page cache), or the free pages where that line is missing; 0 when neither is known.
size_t available_memory_bytes();

}  // namespace tessera
