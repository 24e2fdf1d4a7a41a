// Guest RAM (a memfd mapped MAP_SHARED) and the guest's own userfaultfd.
#pragma once

#include <cstdint>
#include <string>

#include "config.h"

namespace guest {

// splitmix64's finaliser: a cheap, well-mixing 64-bit hash.
inline uint64_t Mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Ram {
  int memfd = -1;
  uint8_t* base = nullptr;
  uint64_t bytes = 0;
  int uffd = -1;
  uint64_t features = 0;  // granted by UFFDIO_API
  uint64_t mode = 0;      // UFFDIO_REGISTER mode used
};

enum class Role { Source, Destination };

// given >= 0: RAM is that memfd (inherited from the agent, populated ahead:
// shmem on base pages, exactly mem_bytes long), not a new one.
bool CreateRam(const Config& c, int given, Ram& ram, std::string& err);
// SPEC.md initial content: zero pages stay holes; the others get content
// derived from (seed, page).
void FillInitial(const Config& c, Ram& ram);
// Source: async write-protect for dirty tracking. Destination: MISSING (and
// MINOR when minor is set) so the agent installs every page.
// `huge`: guest RAM is on hugetlbfs (its MISSING/MINOR feature bits).
bool SetupUffd(Role role, bool minor, bool wp, bool huge, Ram& ram, std::string& err);
// 64-bit hash of the memfd's content (holes read as zeros, via pread: no
// page is allocated or faulted in).
bool HashRam(const Ram& ram, uint64_t& out, std::string& err);

}  // namespace guest
