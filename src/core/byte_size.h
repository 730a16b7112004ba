// Sizes written by people: "2GiB", "512MiB", "1.5G", "1000000".
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

// Bytes of `s`. K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB powers of
// 1000; no unit or B: bytes. Throws Error, prefixed with `what` (e.g. "--kv-cache-memory"),
// for text that is not a size, an unknown unit, or a size below 1 byte or above 2^62.
int64_t parse_byte_size(const std::string& s, const std::string& what);

}  // namespace tessera
