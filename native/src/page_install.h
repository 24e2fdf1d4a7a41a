// PageInstaller: puts pages into a guest's memory, one system call per run of
// consecutive pages — the installing half of the bulk receiver
// (bulk_receiver.cc splits frames and checks them; this only writes what a
// checked pages frame said). Before the guest may run: pwritev into its memfd.
// Once it may: UFFDIO_ZEROPAGE for an all-zero run, else UFFDIO_COPY from a
// page-aligned staging buffer; EEXIST part-way redoes the run page by page,
// EEXIST then meaning "the page came meanwhile: wake its waiters".
// Huge pages (a page larger than the host's: hugetlbfs, the only large pages
// ppsim registers) have no write(2) and no UFFDIO_ZEROPAGE: every one goes in
// with UFFDIO_COPY straight from the frame's bytes (zeros for a zero page),
// before the guest runs too (a resend: punched out, copied again).
// With a PageStates table (install mode "continue", page_states.h): bytes go
// into the memfd with pwritev (populated memory: stores through the table's
// alias) and the run is mapped with UFFDIO_CONTINUE —
// one copy fewer than UFFDIO_COPY from a staging buffer; once the guest may
// run, only the pages this thread claims are written (the others are
// another path's: their bytes are dropped).
// With a ZeroHoles table (install mode "copy", base pages; zero_holes.h) zero
// pages are left holes: before the guest may run a zero stretch is punched
// only where the memfd holds data (a resend over a non-zero copy), once it may
// each data stretch of a run is copied alone and each zero page only marked
// (installed after all when a fault on it was sent on meanwhile).
// Not thread-safe: one installer per receiver thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ppsim {

class PageStates;
class ZeroHoles;

class PageInstaller {
 public:
  PageInstaller() = default;
  PageInstaller(const PageInstaller&) = delete;
  PageInstaller& operator=(const PageInstaller&) = delete;
  ~PageInstaller() { Release(); }

  // pages[k] with its bytes at data[k] (nullptr: a zero page), pages ascending within a run.
  // Returns 0, or the errno of the call that failed with `what` naming it (call, address, length).
  // states: null = install mode "copy"; holes (mode "copy", base pages only): zero pages left holes.
  int Install(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, bool guestRuns, int memfd, int uffd, uint64_t base,
              uint64_t pageSize, PageStates* states, std::string* what, ZeroHoles* holes = nullptr);

  // Pages another path had claimed (their bytes dropped), since the start.
  uint64_t lost() const { return lost_; }

  // Huge pages copied straight from their bytes, and through the staging buffer (a kernel that wants src aligned).
  uint64_t directHuge() const { return directHuge_; }
  uint64_t stagedHuge() const { return stagedHuge_; }

  // Frees the staging buffer (the next install allocates it again).
  void Release();

 private:
  int Before(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, int uffd, uint64_t base,
             uint64_t ps, std::string* what);
  int Atomic(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int uffd, uint64_t base, uint64_t ps,
             std::string* what);
  int Holes(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, bool guestRuns, int memfd, int uffd,
            uint64_t base, uint64_t ps, ZeroHoles* holes, std::string* what);
  int Write(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, uint64_t ps, PageStates* states,
            std::string* what);
  int Pwrite(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, uint64_t ps, std::string* what);
  int Continue(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, bool guestRuns, int memfd, int uffd,
               uint64_t base, uint64_t ps, PageStates* states, std::string* what);
  static int MapClaimedPopulated(int uffd, uint64_t base, const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t k,
                                 size_t m, uint64_t ps);
  int Claimed(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, int uffd, uint64_t base,
              uint64_t ps, PageStates* states, std::string* what);
  int Copy(int uffd, uint64_t dst, const std::vector<const uint8_t*>& data, size_t i, size_t j, uint64_t ps, bool staged = false);
  int CopyOne(int uffd, uint64_t dst, const uint8_t* bytes, uint64_t ps);
  static int CopyFrom(int uffd, uint64_t dst, const uint8_t* src, uint64_t len);
  static bool Huge(uint64_t ps);

  std::vector<uint8_t> zeros_;
  uint8_t* stage_ = nullptr;
  size_t stageLen_ = 0;
  std::vector<uint8_t> won_;
  uint64_t lost_ = 0;
  uint64_t directHuge_ = 0, stagedHuge_ = 0;
};

}  // namespace ppsim
