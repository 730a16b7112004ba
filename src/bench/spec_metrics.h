// Speculative-decoding counters of a Tessera server, read from its /metrics before and
// after a `tessera bench serve` run, so the report covers that run alone.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace tessera::bench {

struct SpecCounters {
  bool present = false;  // the server exposes them (a Tessera server with speculation on)
  int64_t proposed = 0, accepted = 0, verifications = 0;
};

// Reads the tessera_spec_* counters from http://host:port/metrics; not present when the
// server does not answer or has no such counters.
SpecCounters scrape_spec_counters(const std::string& host, int port, const std::string& api_key);
// Parses the Prometheus text of /metrics.
SpecCounters parse_spec_counters(const std::string& text);

// after - before: proposed, accepted, acceptance rate, mean accepted length (tokens per
// verification, accepted + 1); null when not present.
nlohmann::json spec_delta_json(const SpecCounters& before, const SpecCounters& after);
std::string format_spec_report(const nlohmann::json& delta);

}  // namespace tessera::bench
