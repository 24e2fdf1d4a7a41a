// ZeroHoles: the destination's zero pages left as holes (install mode "copy",
// base pages). A zero page costs a page of memory and ~2 µs to install with
// UFFDIO_ZEROPAGE or inside a UFFDIO_COPY on shmem (the kernel allocates and
// clears one); left a hole it costs nothing — until the guest touches it. A
// hole in a MISSING-registered mapping faults; the fault reader answers a
// fault on a page marked here itself (UFFDIO_ZEROPAGE, no round trip), and at
// completion the agent unregisters the guest's memory, after which the kernel
// fills a hole with zeros on first touch like any other memory.
//
// The one race: a fault on page p read (and sent on as a demand fault) before
// the bulk receiver marks p zero. Nobody would then install p: the receiver
// leaves it a hole, and the source answers no request for a page the
// destination already holds. So each side sets its own flag with one atomic
// read-modify-write of p's byte and looks at the other's in the value it got
// back: the reader sets Asked, the receiver sets Zero. Both updates are to one
// location, so one of the two comes second and sees the other's flag — the
// reader then answers the fault itself, or the receiver installs the zero page
// (either wakes the vCPU; should both, the second meets EEXIST and wakes).
//
// Before the guest runs, a third flag, Written, says the memfd holds data for
// the page (every path that writes a page then sets it): a zero page resent
// over a Written one is punched, any other is a hole already — no system call
// to find out (an lseek(SEEK_DATA) per zero stretch cost the pre-copy stream
// more than skipping the zero pages saved).
//
// Clear (pages punched out again while the guest does not run: hybrid's stale
// pages, which must be fetched, never served as zeros) takes Zero and Written
// away. A page marked Zero that later got data (pre-copy resends it non-zero
// before the guest runs) keeps the flag harmlessly: it is in the page cache,
// so it never faults MISSING.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace ppsim {

class ZeroHoles {
 public:
  static constexpr uint8_t kZero = 1;   // a zero page the receiver left a hole
  static constexpr uint8_t kAsked = 2;  // the reader sent a MISSING fault on it on to be requested
  static constexpr uint8_t kWritten = 4;  // before the guest runs: the memfd holds data for it

  // Zeroed by calloc: a large guest's table costs no pass over it (the kernel hands out zero pages
  // as they are touched). Assumes std::atomic<uint8_t> is a lock-free byte with the representation
  // of uint8_t (asserted), so zeroed memory is a valid array of atomics holding 0. Null flags: ENOMEM.
  explicit ZeroHoles(uint64_t count) : count_(count), f_(static_cast<std::atomic<uint8_t>*>(calloc(count, 1))) {}
  ~ZeroHoles() { free(f_); }
  ZeroHoles(const ZeroHoles&) = delete;
  ZeroHoles& operator=(const ZeroHoles&) = delete;

  bool ok() const { return f_ != nullptr; }
  uint64_t count() const { return count_; }
  // Marks p a zero hole; true if the reader had sent a fault on it on (the caller installs it then).
  bool MarkZero(uint32_t p) {
    uint8_t old = f_[p].fetch_or(kZero, std::memory_order_acq_rel);
    if ((old & kZero) == 0) holes_.fetch_add(1, std::memory_order_relaxed);
    return (old & kAsked) != 0;
  }
  // The reader: a MISSING fault on p; true if p is a zero hole (the reader answers it itself).
  bool Asked(uint32_t p) { return (f_[p].fetch_or(kAsked, std::memory_order_acq_rel) & kZero) != 0; }
  // p is no zero hole any more, and holds no data (punched out to be fetched again).
  void Clear(uint32_t p) {
    uint8_t old = f_[p].fetch_and(static_cast<uint8_t>(~(kZero | kWritten)), std::memory_order_acq_rel);
    if ((old & kZero) != 0) holes_.fetch_sub(1, std::memory_order_relaxed);
  }
  // Before the guest runs: p's data was written into the memfd; or p was punched (a hole again).
  void Wrote(uint32_t p) { f_[p].fetch_or(kWritten, std::memory_order_acq_rel); }
  void Punched(uint32_t p) { f_[p].fetch_and(static_cast<uint8_t>(~kWritten), std::memory_order_acq_rel); }
  bool Written(uint32_t p) const { return (f_[p].load(std::memory_order_acquire) & kWritten) != 0; }
  uint8_t Get(uint32_t p) const { return f_[p].load(std::memory_order_acquire); }
  // Pages marked Zero now.
  uint64_t holes() const { return holes_.load(std::memory_order_relaxed); }

 private:
  static_assert(sizeof(std::atomic<uint8_t>) == 1 && std::atomic<uint8_t>::is_always_lock_free, "zero-hole flags are bytes");
  uint64_t count_;
  std::atomic<uint8_t>* f_;
  std::atomic<uint64_t> holes_{0};
};

// The table of a ZeroHoleTable JS object (holders keep their own reference: they may outlive it).
std::shared_ptr<ZeroHoles> ZeroHolesOf(Napi::Env env, Napi::Value v);

// UFFDIO_ZEROPAGE of one page for a fault (EEXIST: the page came meanwhile — woken instead). 0 or the errno.
int AnswerZeroFault(int uffd, uint64_t addr, uint64_t pageSize);

}  // namespace ppsim
