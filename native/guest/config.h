// The guest's workload, read from the line format written by
// src/workload/guest-config.ts (see docs/native.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace guest {

enum class Pattern { Sequential, Uniform, HotCold, Zipf };

// A recorded trace as dense frames (src/workload/trace-replay.ts): window
// r's accesses are frames[start[r] .. start[r+1]); those from
// start[r] + write_from[r] on are writes, the others reads.
struct TraceProgram {
  uint64_t windows = 0, accesses = 0;
  uint64_t max_frame = 0;  // largest frame any access names
  std::vector<uint32_t> frames;
  std::vector<uint64_t> start;
  std::vector<uint64_t> write_from;
  std::vector<double> window_ns;
};

struct Phase {
  // A trace phase (a `tphase` line): vCPU v replays programs[traces[v % n]],
  // `copies` copies of it; frame f of copy j is page base + (j*slot + f)*vcpus + v.
  bool is_trace = false;
  std::vector<size_t> traces;
  uint64_t copies = 0, base = 0, slot = 0;
  bool loop = false;
  uint64_t steps = 0;
  uint64_t compute_ns = 0;
  double write_share = 0;
  Pattern pattern = Pattern::Uniform;
  double region_offset = 0, region_size = 1;
  uint64_t stride = 1;
  double hot_share = 0, hot_access = 0, exponent = 1;
  // Derived (SPEC.md): the region's pages [rstart, rstart + rlen), the hot
  // set size for hotcold, and the zipf CDF over ranks 1..rlen.
  uint64_t rstart = 0, rlen = 1, hot = 1;
  std::vector<double> zipf_cdf;
};

struct Config {
  uint64_t mem_bytes = 0, page_size = 0, vcpus = 0, seed = 0;
  double zero_share = 0;
  std::vector<Phase> phases;
  std::vector<TraceProgram> programs;
  uint64_t pages = 0;        // N = mem_bytes / page_size
  // Optional `huge_page_size`: 0, or guest RAM on hugetlbfs in pages of this
  // size (a power of two above page_size dividing mem_bytes). Accesses stay
  // at page_size; the migration moves huge pages.
  uint64_t huge_page_size = 0;
  // Optional `tasks T ASYNC SLICE`: T tasks per vCPU (task 0 runs `phases`,
  // task k the phases of `phase ... task=k` lines, in task_phases[k - 1]),
  // round-robin SLICE steps each; ASYNC 1: a task about to touch a missing
  // page gives up its vCPU's slot (docs/async-faults.md).
  uint64_t tasks = 1;
  bool async_faults = false;
  uint64_t slice_steps = 0;
  std::vector<std::vector<Phase>> task_phases;
};

// The phases task k runs.
inline const std::vector<Phase>& PhasesOf(const Config& c, size_t k) { return k == 0 ? c.phases : c.task_phases[k - 1]; }

// The unit the migration works in: the huge page when RAM is on hugetlbfs.
inline uint64_t MigrationPageSize(const Config& c) { return c.huge_page_size != 0 ? c.huge_page_size : c.page_size; }

// Steps of phase `ph` on vCPU v (a trace phase: one pass of its copies).
inline uint64_t PhaseSteps(const Config& c, const Phase& ph, uint64_t v) {
  if (!ph.is_trace) return ph.steps;
  return ph.copies * c.programs[ph.traces[v % ph.traces.size()]].accesses;
}

// Parses and validates; on failure returns false with a message naming the
// file, line and problem.
bool LoadConfig(const std::string& path, Config& cfg, std::string& err);

// SPEC.md: page p is initially zero iff ((p * 0x9E3779B1) mod 2^32) / 2^32 < zero_share.
inline bool InitiallyZero(const Config& c, uint64_t p) {
  uint32_t h = static_cast<uint32_t>(p) * 0x9E3779B1u;  // uint32 wraps mod 2^32 like Math.imul >>> 0
  return static_cast<double>(h) / 4294967296.0 < c.zero_share;
}

}  // namespace guest
