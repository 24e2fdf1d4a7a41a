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

// `tw WINDOW_NS N_CODE N_READ N_WRITE` then the three frame lists, each
// delta-encoded from 0. Appends the window to `t`.
bool ParseWindow(std::istringstream& ls, TraceProgram& t, std::string& why) {
  std::string tok;
  double ns;
  uint64_t n[3];
  if (!(ls >> tok) || !ParseF64(tok, ns) || ns < 0) return why = "tw: window_ns must be a number >= 0", false;
  for (uint64_t& x : n)
    if (!(ls >> tok) || !ParseU64(tok, x) || x > (1u << 30)) return why = "tw: the three access counts must be integers", false;
  if (n[0] + n[1] + n[2] == 0) return why = "tw: a window without accesses", false;
  t.start.push_back(t.frames.size());
  t.write_from.push_back(n[0] + n[1]);
  t.window_ns.push_back(ns);
  for (uint64_t count : n) {
    uint64_t acc = 0;
    for (uint64_t i = 0; i < count; i++) {
      uint64_t d;
      if (!(ls >> tok) || !ParseU64(tok, d)) return why = "tw: fewer frames than its counts say", false;
      acc += d;
      if (acc > 0xffffffffull) return why = "tw: frame beyond 2^32", false;
      t.frames.push_back(static_cast<uint32_t>(acc));
      if (acc > t.max_frame) t.max_frame = acc;
    }
  }
  if (ls >> tok) return why = "tw: more frames than its counts say", false;
  return true;
}

// `tphase traces=I,J,… copies=K base=B slot=S loop=0|1`.
bool ParseTracePhase(std::map<std::string, std::string>& kv, const Config& cfg, Phase& p, std::string& why) {
  static const char* keys[] = {"traces", "copies", "base", "slot", "loop"};
  for (const char* k : keys)
    if (!kv.count(k)) return why = std::string("tphase is missing ") + k + "=", false;
  if (kv.size() != sizeof keys / sizeof keys[0]) return why = "tphase has an unknown field", false;
  p.is_trace = true;
  std::istringstream ts(kv["traces"]);
  std::string id;
  while (std::getline(ts, id, ',')) {
    uint64_t i;
    if (!ParseU64(id, i) || i >= cfg.programs.size()) return why = "tphase traces= names a trace not defined above it", false;
    p.traces.push_back(static_cast<size_t>(i));
  }
  if (p.traces.empty()) return why = "tphase traces= is empty", false;
  uint64_t loop;
  if (!ParseU64(kv["copies"], p.copies) || p.copies < 1) return why = "copies must be an integer >= 1", false;
  if (!ParseU64(kv["base"], p.base)) return why = "base must be an integer", false;
  if (!ParseU64(kv["slot"], p.slot) || p.slot < 1) return why = "slot must be an integer >= 1", false;
  if (!ParseU64(kv["loop"], loop) || loop > 1) return why = "loop must be 0 or 1", false;
  p.loop = loop == 1;
  for (size_t i : p.traces) {
    if (cfg.programs[i].max_frame >= p.slot) return why = "a trace of this tphase has more frames than slot", false;
    // Step arithmetic (copies * accesses) must not wrap, or a position could leave the layout.
    if (static_cast<unsigned __int128>(p.copies) * cfg.programs[i].accesses >= (static_cast<unsigned __int128>(1) << 63))
      return why = "copies * accesses of a tphase exceed 2^63 steps", false;
  }
  return true;
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
  uint64_t tw_left = 0;  // window lines the current `trace` block still needs
  while (std::getline(in, line)) {
    lineno++;
    std::istringstream ls(line);
    std::string key;
    if (!(ls >> key) || key[0] == '#') continue;
    if (tw_left > 0 && key != "tw") return fail("a trace block has fewer 'tw' lines than its windows=");
    if (key == "tw") {
      std::string why;
      if (tw_left == 0) return fail("'tw' outside a trace block");
      if (!ParseWindow(ls, cfg.programs.back(), why)) return fail(why);
      if (--tw_left == 0) {
        TraceProgram& t = cfg.programs.back();
        t.start.push_back(t.frames.size());
        if (t.frames.size() != t.accesses) return fail("the trace's windows do not add up to its accesses=");
      }
      continue;
    }
    if (key == "trace") {
      // `trace windows=N accesses=A`, then N `tw` lines.
      std::string a, b, extra;
      TraceProgram t;
      if (!(ls >> a >> b) || (ls >> extra) || a.rfind("windows=", 0) != 0 || b.rfind("accesses=", 0) != 0 ||
          !ParseU64(a.substr(8), t.windows) || !ParseU64(b.substr(9), t.accesses) || t.windows < 1 || t.accesses < 1 ||
          t.windows > (1u << 24) || t.accesses > (1ull << 32))
        return fail("expected 'trace windows=N accesses=A' (N, A >= 1)");
      tw_left = t.windows;
      cfg.programs.push_back(std::move(t));
      continue;
    }
    if (key == "tphase") {
      std::map<std::string, std::string> kv;
      std::string tok, why;
      while (ls >> tok) {
        size_t eq = tok.find('=');
        if (eq == std::string::npos || !kv.emplace(tok.substr(0, eq), tok.substr(eq + 1)).second)
          return fail("tphase field '" + tok + "' is not key=value, or repeated");
      }
      Phase p;
      if (!ParseTracePhase(kv, cfg, p, why)) return fail(why);
      cfg.phases.push_back(std::move(p));
      continue;
    }
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
      // `task=K`: a phase of extra task K (after a `tasks` line, K in 1..T-1).
      uint64_t task = 0;
      if (kv.count("task")) {
        if (!ParseU64(kv["task"], task) || task < 1 || task >= cfg.tasks) return fail("phase task= must be in 1..tasks-1 (after a 'tasks' line)");
        kv.erase("task");
      }
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
      if (task > 0) cfg.task_phases[task - 1].push_back(std::move(p));
      else cfg.phases.push_back(std::move(p));
      continue;
    }
    std::string val, extra;
    if (!(ls >> val)) return fail("expected '" + key + " VALUE'");
    if (key == "tasks") {
      std::string a, sl, extra2;
      if (cfg.tasks != 1 || !cfg.phases.empty()) return fail("'tasks' must come once, before any phase");
      if (!(ls >> a >> sl) || (ls >> extra2) || !ParseU64(val, cfg.tasks) || cfg.tasks < 2 || cfg.tasks > 64 || (a != "0" && a != "1") ||
          !ParseU64(sl, cfg.slice_steps) || cfg.slice_steps < 1)
        return fail("expected 'tasks T ASYNC SLICE' (T in 2..64, ASYNC 0 or 1, SLICE >= 1)");
      cfg.async_faults = a == "1";
      cfg.task_phases.resize(cfg.tasks - 1);
      continue;
    }
    if (ls >> extra) return fail("expected '" + key + " VALUE'");
    if (key == "huge_page_size") {
      if (cfg.huge_page_size != 0) return fail("'huge_page_size' given twice");
      if (!ParseU64(val, cfg.huge_page_size) || cfg.huge_page_size == 0) return fail("bad value for huge_page_size: '" + val + "'");
      continue;
    }
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
  if (tw_left > 0) return fail("the file ends inside a trace block");
  lineno = 0;
  for (int i = 0; i < 5; i++)
    if (!seen[i]) return fail(std::string("missing '") + names[i] + "'");
  long host = sysconf(_SC_PAGESIZE);
  if (cfg.page_size != static_cast<uint64_t>(host))
    return fail("page_size " + std::to_string(cfg.page_size) + " must equal the host page size " + std::to_string(host) +
                " (userfaultfd works in host pages)");
  if (cfg.mem_bytes == 0 || cfg.mem_bytes % cfg.page_size != 0) return fail("mem_bytes must be a positive multiple of page_size");
  if (cfg.vcpus < 1 || cfg.vcpus > 64) return fail("vcpus must be in 1..64");
  if (cfg.huge_page_size != 0) {
    const uint64_t h = cfg.huge_page_size;
    if ((h & (h - 1)) != 0 || h <= cfg.page_size || h > (1ull << 30) || cfg.mem_bytes % h != 0)
      return fail("huge_page_size must be a power of two above page_size, at most 1 GiB, dividing mem_bytes");
  }
  if (cfg.phases.empty()) return fail("at least one 'phase' line is required");
  cfg.pages = cfg.mem_bytes / cfg.page_size;
  for (size_t k = 0; k < cfg.task_phases.size(); k++) {
    if (cfg.task_phases[k].empty()) return fail("task " + std::to_string(k + 1) + " has no 'phase ... task=" + std::to_string(k + 1) + "' line");
    for (Phase& p : cfg.task_phases[k]) DeriveRegion(cfg, p);
  }
  for (size_t i = 0; i < cfg.phases.size(); i++) {
    Phase& p = cfg.phases[i];
    if (p.is_trace && cfg.tasks > 1) return fail("tasks and trace phases do not go together");
    if (!p.is_trace) {
      DeriveRegion(cfg, p);
      continue;
    }
    // Every page a copy can touch, base + (copies*slot - 1)*vcpus + vcpus - 1, lies in RAM; ownership needs base % vcpus == 0.
    unsigned __int128 end = static_cast<unsigned __int128>(p.copies) * p.slot * cfg.vcpus + p.base;
    if (p.base % cfg.vcpus != 0) return fail("tphase base must be a multiple of vcpus");
    if (end > cfg.pages) return fail("tphase copies*slot*vcpus pages from base do not fit in mem_bytes");
    if (p.loop && i + 1 != cfg.phases.size()) return fail("a looping tphase must be the last phase");
  }
  return true;
}

}  // namespace guest
