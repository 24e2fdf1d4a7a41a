// PageStates: per destination page, whether the guest's mapping may have it
// yet — shared by every path that installs pages once the install mode is
// "continue" (bytes written into the memfd's page cache, then mapped into the
// guest with UFFDIO_CONTINUE): each bulk receiver thread and the urgent
// reply's install from JS (PageTable, page_states.cc).
//
// Why a claim: with the guest registered MISSING|MINOR, bytes written into the
// page cache are invisible to the guest until CONTINUE maps them — but once a
// page is mapped, a write into the page cache is a write into the guest's
// memory. A bulk copy arriving after the demanded copy was mapped (or the
// reverse) must therefore never be written. Whoever moves a page from Absent
// to Receiving (one compare-and-swap) is the only one that writes it; the
// others drop their bytes. Transitions:
//   Absent -> Receiving  Claim(): the winner alone; the page is a hole (no
//                        path writes a page without holding its claim), so
//                        nothing the guest can see changes;
//   Receiving -> Mapped  Mapped(): after the winner's CONTINUE / ZEROPAGE
//                        returned — every byte was written before the map, and
//                        the map woke whoever faulted on the page meanwhile
//                        (a MINOR fault on a half-written page waits for it);
//   Receiving -> Absent  Absent(): the winner failed, after punching out
//                        what it wrote (the hole again: a later claim starts clean);
//   any -> Absent        Absent(): pages punched out while the guest does not
//                        run (the switchover's stale pages; no installer runs then).
// Before the guest may run there is no claim: writes are allowed (pre-copy
// resends a page), and each run is CONTINUE-d as it is written (Mapped), so
// that at resume no page is in the page cache unmapped — nothing for the
// guest to fault on, nothing added to the downtime.
// Populated memory (the destination's memfd allocated before the migration,
// dest-prealloc.ts): an Absent page is then a zero page in the page cache that
// the guest's mapping does not map (a guest touch is a MINOR fault), or a hole
// where one was punched since. Nothing changes for data; a zero page is mapped
// as it is (CONTINUE), a hole with ZEROPAGE (MapZeroRange) — and no path
// writes zeros over a page never written. Data goes in through an alias: the
// agent's own mapping of the memfd, every page of it mapped (measured: pwritev
// into a memfd takes its inode lock, so that the bulk receiver threads queued
// behind each other for a third of their time; a store into a mapped page
// takes no lock and no system call). The guest cannot see those bytes before
// the CONTINUE that maps the page into its own mapping, which the claim orders
// as it does pwritev.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ppsim {

enum PageState : uint8_t { kAbsent = 0, kReceiving = 1, kMapped = 2 };

class PageStates {
 public:
  // alias: populated memory's mapping in this process (aliasLen bytes, owned from here: unmapped
  // with the table, after the last receiver let it go); null otherwise.
  PageStates(size_t count, uint64_t pageSize, uint8_t* alias = nullptr, size_t aliasLen = 0)
      : count_(count), ps_(pageSize), alias_(alias), aliasLen_(aliasLen), s_(new std::atomic<uint8_t>[count]) {
    for (size_t i = 0; i < count; i++) s_[i].store(kAbsent, std::memory_order_relaxed);
  }
  ~PageStates();
  PageStates(const PageStates&) = delete;
  PageStates& operator=(const PageStates&) = delete;
  uint64_t pageSize() const { return ps_; }
  // The alias of page p's bytes (p < count(): the callers' pages are checked against the layout), or
  // null: then the memfd is written with pwritev.
  uint8_t* Alias(uint32_t p) const { return alias_ == nullptr || p >= count_ ? nullptr : alias_ + static_cast<uint64_t>(p) * ps_; }
  size_t count() const { return count_; }
  // Whether the memfd was allocated whole before the migration (see above): it comes with its alias.
  bool populated() const { return alias_ != nullptr; }
  // Absent -> Receiving: true for exactly one caller.
  bool Claim(uint32_t p) {
    uint8_t want = kAbsent;
    return s_[p].compare_exchange_strong(want, kReceiving, std::memory_order_acq_rel);
  }
  void Mapped(uint32_t p) { s_[p].store(kMapped, std::memory_order_release); }
  void Absent(uint32_t p) { s_[p].store(kAbsent, std::memory_order_release); }
  uint8_t Get(uint32_t p) const { return s_[p].load(std::memory_order_acquire); }

 private:
  size_t count_;
  uint64_t ps_;
  uint8_t* alias_;
  size_t aliasLen_;
  std::unique_ptr<std::atomic<uint8_t>[]> s_;
};

// The table of a PageTable JS object (a receiver keeps its own reference: it may outlive the object).
std::shared_ptr<PageStates> PageStatesOf(Napi::Env env, Napi::Value v);

// UFFDIO_CONTINUE of [start, start + len): maps pages already in the page cache and wakes their
// waiters; with skipMapped a page mapped already (EEXIST) is passed over. 0 or the errno; `done`
// (if given): the bytes from start that were mapped or passed over before the failing page.
int ContinueRange(int uffd, uint64_t start, uint64_t len, uint64_t pageSize, bool skipMapped, uint64_t* done = nullptr);
// UFFDIO_ZEROPAGE of [start, start + len) (a hole becomes a mapped zero page). 0 or the errno.
int ZeropageRange(int uffd, uint64_t start, uint64_t len);
// Maps pages this path owns (claimed, or the guest does not run) whose bytes are in place: with
// populated memory CONTINUE, ZEROPAGE for a zero page punched to a hole since (CONTINUE finds no
// folio: EFAULT); otherwise (all zero pages) ZEROPAGE. A page mapped already is passed over. 0 or
// the errno.
int MapZeroRange(int uffd, uint64_t start, uint64_t len, uint64_t pageSize, bool populated);
// fallocate(PUNCH_HOLE | KEEP_SIZE): the pages become holes again. 0 or the errno.
int PunchRange(int memfd, uint64_t offset, uint64_t len);

}  // namespace ppsim
