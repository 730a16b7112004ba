#include "bench/spec_metrics.h"

#include <httplib.h>

#include <cstdio>
#include <sstream>

namespace tessera::bench {

SpecCounters parse_spec_counters(const std::string& text) {
  SpecCounters c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) continue;
    const std::string name = line.substr(0, sp);
    int64_t* dst = nullptr;
    if (name == "tessera_spec_proposed_tokens_total")
      dst = &c.proposed;
    else if (name == "tessera_spec_accepted_tokens_total")
      dst = &c.accepted;
    else if (name == "tessera_spec_verifications_total")
      dst = &c.verifications;
    if (dst == nullptr) continue;
    try {
      *dst = static_cast<int64_t>(std::stod(line.substr(sp + 1)));
      c.present = true;
    } catch (const std::exception&) {
    }
  }
  return c;
}

SpecCounters scrape_spec_counters(const std::string& host, int port, const std::string& api_key) {
  httplib::Client cli(host, port);
  cli.set_connection_timeout(std::chrono::seconds(5));
  cli.set_read_timeout(std::chrono::seconds(10));
  httplib::Headers h;
  if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
  auto res = cli.Get("/metrics", h);
  if (!res || res->status != 200) return {};
  return parse_spec_counters(res->body);
}

nlohmann::json spec_delta_json(const SpecCounters& before, const SpecCounters& after) {
  if (!after.present) return nullptr;
  const int64_t p = after.proposed - before.proposed, a = after.accepted - before.accepted,
                v = after.verifications - before.verifications;
  return {{"proposed", p},
          {"accepted", a},
          {"verifications", v},
          {"acceptance_rate", p > 0 ? static_cast<double>(a) / p : 0.0},
          {"mean_accepted_length", v > 0 ? static_cast<double>(a + v) / v : 0.0}};
}

std::string format_spec_report(const nlohmann::json& d) {
  if (d.is_null()) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "Speculative: %lld proposed, %lld accepted (acceptance rate %.3f), mean "
                "accepted length %.2f\n",
                static_cast<long long>(d["proposed"].get<int64_t>()),
                static_cast<long long>(d["accepted"].get<int64_t>()),
                d["acceptance_rate"].get<double>(), d["mean_accepted_length"].get<double>());
  return buf;
}

}  // namespace tessera::bench
