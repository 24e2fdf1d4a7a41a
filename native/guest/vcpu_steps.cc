// What one step of a task does (src/workload/SPEC.md): which
// phase it is in, which page it accesses and whether it writes it, and the
// compute it does first. Streams are per task slot (xoshiro256**, seeded in
// vcpu.cc), so a step depends only on the slot's state, never on timing.
#include <algorithm>
#include <cstdint>

#include "memory.h"
#include "vcpu.h"

namespace guest {

namespace {

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256** (Blackman & Vigna).
inline uint64_t Next(uint64_t* s) {
  uint64_t r = Rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = Rotl(s[3], 45);
  return r;
}
inline double NextDouble(uint64_t* s) { return static_cast<double>(Next(s) >> 11) * 0x1.0p-53; }
// Uniform in [0, n) by multiply-shift (bias < n / 2^64, negligible).
inline uint64_t NextBelow(uint64_t* s, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(Next(s)) * n) >> 64);
}

}  // namespace

uint64_t Machine::ChoosePage(size_t v, VcpuState& s, const Phase& ph, uint64_t sip) {
  switch (ph.pattern) {
    case Pattern::Sequential: {
      if (sip == 0) s.cursor = static_cast<uint64_t>((static_cast<unsigned __int128>(v) * ph.rlen) / slots_);
      uint64_t p = ph.rstart + s.cursor;
      s.cursor = (s.cursor + ph.stride % ph.rlen) % ph.rlen;
      return p;
    }
    case Pattern::Uniform:
      return ph.rstart + NextBelow(s.rng, ph.rlen);
    case Pattern::HotCold: {
      double u = NextDouble(s.rng);
      if (u < ph.hot_access || ph.rlen == ph.hot) return ph.rstart + NextBelow(s.rng, ph.hot);
      return ph.rstart + ph.hot + NextBelow(s.rng, ph.rlen - ph.hot);
    }
    case Pattern::Zipf: {
      double u = NextDouble(s.rng);
      size_t r = static_cast<size_t>(std::upper_bound(ph.zipf_cdf.begin(), ph.zipf_cdf.end(), u) - ph.zipf_cdf.begin());
      if (r >= ph.rlen) r = ph.rlen - 1;
      return ph.rstart + r;  // rank r+1
    }
  }
  return ph.rstart;
}

// SPEC.md "Trace phases": the access of local step `sip` of a trace phase,
// a pure function of the step: window r (the last one beginning at or before
// it), then copy and index inside the window.
uint64_t Machine::TracePage(size_t v, const Phase& ph, uint64_t sip, bool& write, double& compute_ns) const {
  const TraceProgram& t = cfg_.programs[ph.traces[v % ph.traces.size()]];
  uint64_t lo = 0, hi = t.windows - 1;
  while (lo < hi) {
    uint64_t mid = (lo + hi + 1) / 2;
    if (ph.copies * t.start[mid] <= sip) lo = mid;
    else hi = mid - 1;
  }
  uint64_t n = t.start[lo + 1] - t.start[lo];  // >= 1: config.cc refuses empty windows
  uint64_t rem = sip - ph.copies * t.start[lo];
  uint64_t copy = rem / n, index = rem % n;
  write = index >= t.write_from[lo];
  compute_ns = t.window_ns[lo] / static_cast<double>(n);
  // < pages: config.cc checked base + copies*slot*vcpus <= pages and every frame < slot.
  return ph.base + (copy * ph.slot + t.frames[t.start[lo] + index]) * cfg_.vcpus + v;
}

uint64_t Machine::Step(size_t slot, VcpuState& s, bool& write) {
  // Which phase: phases run in order and repeat; a looping trace phase (the
  // last one, config.cc checks) never ends. Lengths may differ per vCPU.
  // A trace phase comes only with one task per vCPU (config.cc): slot == vCPU.
  const size_t v = slot;
  const std::vector<Phase>& phases = PhasesOf(cfg_, slot / cfg_.vcpus);
  const size_t last = phases.size() - 1;
  const bool endless = phases[last].is_trace && phases[last].loop;
  uint64_t sip = s.step;
  if (!endless) {
    uint64_t cycle = 0;
    for (const Phase& p : phases) cycle += PhaseSteps(cfg_, p, v);
    sip %= cycle;
  }
  size_t pi = 0;
  while (pi < last && sip >= PhaseSteps(cfg_, phases[pi], v)) sip -= PhaseSteps(cfg_, phases[pi++], v);
  const Phase& ph = phases[pi];
  if (ph.is_trace) {
    if (endless) sip %= PhaseSteps(cfg_, ph, v);
    double ns;
    uint64_t p = TracePage(v, ph, sip, write, ns);
    Compute(static_cast<uint64_t>(ns));
    return p;
  }

  Compute(ph.compute_ns);
  write = NextDouble(s.rng) < ph.write_share;  // drawn every step, so streams never depend on shares
  uint64_t p = ChoosePage(slot, s, ph, sip);
  if (write) {
    // Ownership (SPEC.md; per task slot with tasks): write the page of this slot in p's group.
    int64_t n = static_cast<int64_t>(slots_);
    int64_t q = static_cast<int64_t>(p) - static_cast<int64_t>(p % slots_) + static_cast<int64_t>(slot);
    auto outside = [&](int64_t x) {
      return x < static_cast<int64_t>(ph.rstart) || x >= static_cast<int64_t>(ph.rstart + ph.rlen);
    };
    if (outside(q)) q -= n;
    if (outside(q)) write = false;  // region narrower than slots pages: a read of p
    else p = static_cast<uint64_t>(q);
  }
  return p;
}

}  // namespace guest
