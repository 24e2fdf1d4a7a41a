#include "config.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace guest {

namespace {

bool ParseU64(const std::string& s, uint64_t& out) {
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool ParseF64(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  out = v;
  return true;
}

// Region per SPEC.md: [floor(offset*N), floor((offset+size)*N)), at least one page.
void DeriveRegion(const Config& c, Phase& p) {
  double n = static_cast<double>(c.pages);
  uint64_t a = static_cast<uint64_t>(std::floor(p.region_offset * n));
  uint64_t b = static_cast<uint64_t>(std::floor((p.region_offset + p.region_size) * n));
  if (a >= c.pages) a = c.pages - 1;
  if (b > c.pages) b = c.pages;
  if (b <= a) b = a + 1;
  p.rstart = a;
  p.rlen = b - a;
  double hot = std::floor(p.hot_share * static_cast<double>(p.rlen));
  p.hot = hot < 1 ? 1 : static_cast<uint64_t>(hot);
  if (p.hot > p.rlen) p.hot = p.rlen;
  if (p.pattern == Pattern::Zipf) {
    // P(r) ∝ r^-exponent for r in 1..rlen, as a cumulative table.
    p.zipf_cdf.resize(p.rlen);
    double sum = 0;
    for (uint64_t r = 0; r < p.rlen; r++) {
      sum += std::pow(static_cast<double>(r + 1), -p.exponent);
      p.zipf_cdf[r] = sum;
    }
    for (double& x : p.zipf_cdf) x /= sum;
    p.zipf_cdf.back() = 1.0;
  }
}

}  // namespace

bool LoadConfig(const std::string& path, Config& cfg, std::string& err) {
  std::ifstream in(path);
  if (!in) {
    err = path + ": cannot open config file";
    return false;
  }
  bool seen[5] = {false, false, false, false, false};
  const char* names[5] = {"mem_bytes", "page_size", "vcpus", "seed", "zero_share"};
  std::string line;
  int lineno = 0;
  auto fail = [&](const std::string& m) {
    err = path + (lineno > 0 ? ":" + std::to_string(lineno) : std::string()) + ": " + m;
    return false;
  };
  while (std::getline(in, line)) {
    lineno++;
    std::istringstream ls(line);
    std::string key;
    if (!(ls >> key) || key[0] == '#') continue;
    if (key == "phase") {
      std::map<std::string, std::string> kv;
      std::string tok;
      while (ls >> tok) {
        size_t eq = tok.find('=');
        if (eq == std::string::npos) return fail("phase field '" + tok + "' is not key=value");
        if (!kv.emplace(tok.substr(0, eq), tok.substr(eq + 1)).second) return fail("phase field '" + tok.substr(0, eq) + "' repeated");
      }
      static const char* keys[] = {"steps", "compute_ns", "write_share", "pattern", "region_offset", "region_size",
                                   "stride", "hot_share", "hot_access", "exponent"};
      for (const char* k : keys)
        if (!kv.count(k)) return fail(std::string("phase is missing ") + k + "=");
      if (kv.size() != sizeof keys / sizeof keys[0]) return fail("phase has an unknown field");
      Phase p;
      const std::string& pat = kv["pattern"];
      if (pat == "sequential") p.pattern = Pattern::Sequential;
      else if (pat == "uniform") p.pattern = Pattern::Uniform;
      else if (pat == "hotcold") p.pattern = Pattern::HotCold;
      else if (pat == "zipf") p.pattern = Pattern::Zipf;
      else return fail("pattern must be sequential|uniform|hotcold|zipf, got '" + pat + "'");
      if (!ParseU64(kv["steps"], p.steps) || p.steps < 1) return fail("steps must be an integer >= 1");
      if (!ParseU64(kv["compute_ns"], p.compute_ns)) return fail("compute_ns must be an integer >= 0");
      if (!ParseU64(kv["stride"], p.stride) || p.stride < 1) return fail("stride must be an integer >= 1");
      struct {
        const char* k;
        double* v;
        double lo, hi;
      } fs[] = {{"write_share", &p.write_share, 0, 1}, {"region_offset", &p.region_offset, 0, 1},
                {"region_size", &p.region_size, 0, 1}, {"hot_share", &p.hot_share, 0, 1},
                {"hot_access", &p.hot_access, 0, 1},   {"exponent", &p.exponent, 0, 1e6}};
      for (auto& f : fs)
        if (!ParseF64(kv[f.k], *f.v) || *f.v < f.lo || *f.v > f.hi)
          return fail(std::string(f.k) + " must be a number in [" + std::to_string(f.lo) + ", " + std::to_string(f.hi) + "]");
      if (p.pattern == Pattern::Zipf && !(p.exponent > 0)) return fail("zipf exponent must be > 0");
      cfg.phases.push_back(std::move(p));
      continue;
    }
    std::string val, extra;
    if (!(ls >> val) || (ls >> extra)) return fail("expected '" + key + " VALUE'");
    int idx = -1;
    for (int i = 0; i < 5; i++)
      if (key == names[i]) idx = i;
    if (idx < 0) return fail("unknown key '" + key + "'");
    if (seen[idx]) return fail("'" + key + "' given twice");
    seen[idx] = true;
    bool ok = true;
    switch (idx) {
      case 0: ok = ParseU64(val, cfg.mem_bytes); break;
      case 1: ok = ParseU64(val, cfg.page_size); break;
      case 2: ok = ParseU64(val, cfg.vcpus); break;
      case 3: ok = ParseU64(val, cfg.seed); break;
      case 4: ok = ParseF64(val, cfg.zero_share) && cfg.zero_share >= 0 && cfg.zero_share <= 1; break;
    }
    if (!ok) return fail("bad value for " + key + ": '" + val + "'");
  }
  lineno = 0;
  for (int i = 0; i < 5; i++)
    if (!seen[i]) return fail(std::string("missing '") + names[i] + "'");
  long host = sysconf(_SC_PAGESIZE);
  if (cfg.page_size != static_cast<uint64_t>(host))
    return fail("page_size " + std::to_string(cfg.page_size) + " must equal the host page size " + std::to_string(host) +
                " (userfaultfd works in host pages)");
  if (cfg.mem_bytes == 0 || cfg.mem_bytes % cfg.page_size != 0) return fail("mem_bytes must be a positive multiple of page_size");
  if (cfg.vcpus < 1 || cfg.vcpus > 64) return fail("vcpus must be in 1..64");
  if (cfg.phases.empty()) return fail("at least one 'phase' line is required");
  cfg.pages = cfg.mem_bytes / cfg.page_size;
  cfg.cycle_steps = 0;
  for (Phase& p : cfg.phases) {
    DeriveRegion(cfg, p);
    cfg.cycle_steps += p.steps;
  }
  return true;
}

}  // namespace guest
