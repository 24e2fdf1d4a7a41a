// The guest's workload, read from the line format written by
// src/workload/guest-config.ts (see docs/native.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace guest {

enum class Pattern { Sequential, Uniform, HotCold, Zipf };

struct Phase {
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
  uint64_t pages = 0;        // N = mem_bytes / page_size
  uint64_t cycle_steps = 0;  // sum of phase steps; phases repeat after it
};

// Parses and validates; on failure returns false with a message naming the
// file, line and problem.
bool LoadConfig(const std::string& path, Config& cfg, std::string& err);

// SPEC.md: page p is initially zero iff ((p * 0x9E3779B1) mod 2^32) / 2^32 < zero_share.
inline bool InitiallyZero(const Config& c, uint64_t p) {
  uint32_t h = static_cast<uint32_t>(p) * 0x9E3779B1u;  // uint32 wraps mod 2^32 like Math.imul >>> 0
  return static_cast<double>(h) / 4294967296.0 < c.zero_share;
}

}  // namespace guest
