#include "page_install.h"

#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <climits>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "../common/uapi.h"
#include "nt_copy.h"
#include "page_states.h"
#include "util.h"
#include "zero_holes.h"

namespace ppsim {


int PageInstaller::Install(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, bool guestRuns, int memfd, int uffd, uint64_t base,
                           uint64_t pageSize, PageStates* states, std::string* what, ZeroHoles* holes) {
  if (states != nullptr || Huge(pageSize)) holes = nullptr;  // holes are mode "copy"'s, on base pages (hugetlbfs has no ZEROPAGE)
  size_t i = 0;
  while (i < pages.size()) {
    size_t j = i + 1;
    while (j < pages.size() && pages[j] == pages[j - 1] + 1) j++;
    int e = holes != nullptr    ? Holes(pages, data, i, j, guestRuns, memfd, uffd, base, pageSize, holes, what)
            : states != nullptr ? Continue(pages, data, i, j, guestRuns, memfd, uffd, base, pageSize, states, what)
            : guestRuns       ? Atomic(pages, data, i, j, uffd, base, pageSize, what)
                              : Before(pages, data, i, j, memfd, uffd, base, pageSize, what);
    if (e != 0) return e;
    i = j;
  }
  return 0;
}

void PageInstaller::Release() {
  free(stage_);
  stage_ = nullptr;
  stageLen_ = 0;
}

// The guest may not run: pwritev of the run (zero pages as zeros) into the memfd. hugetlbfs has no
// write(2): each huge page goes in with UFFDIO_COPY (zeros for a zero page); one there already (a
// resend: pre-copy's later rounds, the stop-and-copy) is punched out and copied again — nobody can
// fault on it meanwhile, the guest does not run (as dest-memory.ts installHuge does on the JS path).
int PageInstaller::Before(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, int uffd,
                          uint64_t base, uint64_t ps, std::string* what) {
  if (!Huge(ps)) return Pwrite(pages, data, i, j, memfd, ps, what);
  for (size_t k = i; k < j; k++) {
    uint64_t d = base + pages[k] * ps;
    int e = CopyOne(uffd, d, data[k], ps);
    if (e == EEXIST) {
      e = PunchRange(memfd, pages[k] * ps, ps);
      if (e != 0) return *what = "fallocate(PUNCH_HOLE, memfd page " + std::to_string(pages[k]) + ", " + std::to_string(ps) + " bytes)", e;
      e = CopyOne(uffd, d, data[k], ps);
    }
    if (e != 0) return *what = "UFFDIO_COPY(dst " + Hex(d) + ", len " + std::to_string(ps) + ")", e;
  }
  return 0;
}

// Install mode "continue" (page_states.h says why each step is safe). Before the guest may run:
// written (a resend overwrites: allowed then), then mapped at once (EEXIST: mapped by an earlier
// copy), so that no page waits unmapped for the guest to fault on it after resume. Once it may:
// only the pages this thread claims.
int PageInstaller::Continue(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, bool guestRuns, int memfd,
                            int uffd, uint64_t base, uint64_t ps, PageStates* states, std::string* what) {
  if (guestRuns) return Claimed(pages, data, i, j, memfd, uffd, base, ps, states, what);
  // Populated memory: a zero page never written is zero already — only data, and zeros over an
  // older copy (a resend: Mapped), are written.
  const bool populated = states->populated();
  size_t k = i;
  while (k < j) {
    auto write = [&](size_t q) { return !populated || data[q] != nullptr || states->Get(pages[q]) == kMapped; };
    if (!write(k)) {
      k++;
      continue;
    }
    size_t m = k + 1;
    while (m < j && write(m)) m++;
    int e = Write(pages, data, k, m, memfd, ps, states, what);
    if (e != 0) return e;
    k = m;
  }
  // Only the stretches not mapped yet: a resend (pre-copy's later rounds, the stop-and-copy) is
  // mapped already, and a CONTINUE of it would fail EEXIST page by page — work inside the downtime.
  k = i;
  while (k < j) {
    if (states->Get(pages[k]) == kMapped) {
      k++;
      continue;
    }
    size_t m = k + 1;
    while (m < j && states->Get(pages[m]) != kMapped) m++;
    uint64_t dst = base + pages[k] * ps, len = (m - k) * ps;
    // EEXIST: mapped meanwhile by another path's copy. Populated: an unwritten zero page that was
    // punched since is a hole, which CONTINUE cannot map (MapZeroRange gives it ZEROPAGE).
    int e = populated ? MapZeroRange(uffd, dst, len, ps, true) : ContinueRange(uffd, dst, len, ps, true);
    if (e != 0) {
      *what = "UFFDIO_CONTINUE(dst " + Hex(dst) + ", len " + std::to_string(len) + ")";
      // Holes again, absent (the guest does not run: punching also unmaps what the call mapped):
      // populated memory's later zero copy of such a page writes nothing, so no bytes of this one
      // may stay behind. A failed punch leaves them claimed by nobody: never mapped (page_states.h).
      if (PunchRange(memfd, pages[k] * ps, len) != 0) return e;
      for (size_t q = k; q < m; q++) states->Absent(pages[q]);
      return e;
    }
    for (size_t q = k; q < m; q++) states->Mapped(pages[q]);
    k = m;
  }
  return 0;
}

// The guest may run: each page of the run is claimed (Absent -> Receiving); each stretch of
// claimed pages is written into its holes and then mapped by one CONTINUE (ZEROPAGE if all zero),
// which wakes whoever faulted on them meanwhile; then Mapped. A page another path claimed is not
// touched: its bytes here are dropped (that path's map wakes its waiters).
int PageInstaller::Claimed(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, int uffd,
                           uint64_t base, uint64_t ps, PageStates* states, std::string* what) {
  won_.resize(j - i);
  for (size_t k = i; k < j; k++) won_[k - i] = states->Claim(pages[k]) ? 1 : 0;
  size_t k = i;
  while (k < j) {
    if (won_[k - i] == 0) {
      lost_++;
      k++;
      continue;
    }
    size_t m = k + 1;
    while (m < j && won_[m - i] != 0) m++;
    bool allZero = true;
    for (size_t q = k; q < m && allZero; q++) allZero = data[q] == nullptr;
    uint64_t dst = base + pages[k] * ps, len = (m - k) * ps;
    int e = allZero ? 0 : Write(pages, data, k, m, memfd, ps, states, what);
    if (e == 0) {
      // EEXIST here would mean a claimed page was already mapped: a path mapped without its claim.
      // Refused, never skipped. In populated memory the stretch's zero pages are not written, and
      // one may be a hole (punched since), which CONTINUE cannot map: it alone gets ZEROPAGE.
      const bool populated = states->populated();
      e = populated ? MapClaimedPopulated(uffd, base, pages, data, k, m, ps) : allZero ? ZeropageRange(uffd, dst, len) : ContinueRange(uffd, dst, len, ps, false);
      if (e != 0) *what = std::string(populated ? "UFFDIO_CONTINUE (ZEROPAGE for holes)" : allZero ? "UFFDIO_ZEROPAGE" : "UFFDIO_CONTINUE") + "(dst " + Hex(dst) + ", len " + std::to_string(len) + ")";
    }
    if (e != 0) {
      // Unclaimed holes again, for whoever installs them next. A CONTINUE that failed part-way mapped
      // a prefix: punching unmaps it too (the guest faults on it again, MISSING). A failed punch
      // leaves the stretch claimed: bytes may be left in it, so nobody may map it (page_states.h).
      const bool punched = PunchRange(memfd, pages[k] * ps, len) == 0;
      for (size_t q = k; q < m && punched; q++) states->Absent(pages[q]);
      for (size_t q = m; q < j; q++)
        if (won_[q - i] != 0) states->Absent(pages[q]);
      uffdio_range r{dst, len};
      (void)ioctl(uffd, UFFDIO_WAKE, &r);  // a waiter faults again and is answered by another path
      return e;
    }
    for (size_t q = k; q < m; q++) states->Mapped(pages[q]);
    k = m;
  }
  return 0;
}

// A claimed stretch [k, m) of consecutive pages, its data in place, in populated memory: one
// CONTINUE; where it stops at a hole (EFAULT) under a zero page (punched since, left unwritten),
// that page gets ZEROPAGE and the CONTINUE goes on after it. A hole under a data page, EEXIST or any
// other error is returned, never skipped.
int PageInstaller::MapClaimedPopulated(int uffd, uint64_t base, const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t k,
                                       size_t m, uint64_t ps) {
  size_t q = k;
  while (q < m) {
    uint64_t done = 0;
    int e = ContinueRange(uffd, base + pages[q] * ps, (m - q) * ps, ps, false, &done);
    if (e == 0) return 0;
    q += static_cast<size_t>(done / ps);
    if (e != EFAULT || q >= m || data[q] != nullptr) return e;
    e = ZeropageRange(uffd, base + pages[q] * ps, ps);
    if (e != 0) return e;
    q++;
  }
  return 0;
}

// Zero pages left holes (zero_holes.h), the run [i..j) split into stretches of data pages and of
// zero pages. Data: as without holes (pwritev before the guest may run, UFFDIO_COPY once it may) —
// a stretch apiece, which costs a call (~0.9 µs) per stretch and saves ~1.7 µs per zero page, so it
// pays even for a zero page alone between data pages (measured: docs/native.md). Zeros: before the
// guest may run, punched only where the table says the memfd holds data (a page resent as zero over
// a non-zero copy), then marked; once it may, marked, and installed after all if a fault on it went
// on to be requested meanwhile.
int PageInstaller::Holes(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, bool guestRuns, int memfd,
                         int uffd, uint64_t base, uint64_t ps, ZeroHoles* holes, std::string* what) {
  size_t k = i;
  while (k < j) {
    const bool zero = data[k] == nullptr;
    size_t m = k + 1;
    while (m < j && (data[m] == nullptr) == zero) m++;
    if (!zero) {
      int e = guestRuns ? Atomic(pages, data, k, m, uffd, base, ps, what) : Pwrite(pages, data, k, m, memfd, ps, what);
      if (e != 0) return e;
      if (!guestRuns)
        for (size_t q = k; q < m; q++) holes->Wrote(pages[q]);
      k = m;
      continue;
    }
    // Before the guest runs, the zero pages resent over data (Written) are punched, a stretch at a time.
    for (size_t q = k; !guestRuns && q < m;) {
      if (!holes->Written(pages[q])) {
        q++;
        continue;
      }
      size_t r = q + 1;
      while (r < m && holes->Written(pages[r])) r++;
      int e = PunchRange(memfd, pages[q] * ps, (r - q) * ps);
      if (e != 0) return *what = "fallocate(PUNCH_HOLE, memfd page " + std::to_string(pages[q]) + ", " + std::to_string(r - q) + " pages)", e;
      for (size_t t = q; t < r; t++) holes->Punched(pages[t]);
      q = r;
    }
    for (size_t q = k; q < m; q++) {
      if (!holes->MarkZero(pages[q])) continue;
      // A fault on it went on as a demand fault before the mark: nobody else will install it.
      uint64_t d = base + pages[q] * ps;
      int e = AnswerZeroFault(uffd, d, ps);
      if (e != 0) return *what = "UFFDIO_ZEROPAGE(dst " + Hex(d) + ", len " + std::to_string(ps) + ")", e;
    }
    k = m;
  }
  return 0;
}

// Pages [i..j) (consecutive; zero pages as zeros) into the memfd: stores into its alias where the
// table has one (populated memory, page_states.h), else pwritev.
int PageInstaller::Write(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, uint64_t ps,
                         PageStates* states, std::string* what) {
  if (states->Alias(pages[i]) == nullptr) return Pwrite(pages, data, i, j, memfd, ps, what);
  for (size_t k = i; k < j; k++) {
    uint8_t* a = states->Alias(pages[k]);
    if (data[k] != nullptr) StreamCopy(a, data[k], ps);
    // A zero page: zeros only over an older copy (a resend before the guest runs). Otherwise it
    // holds zeros already — populated, or a hole since (no path leaves bytes in a page it does not map).
    else if (states->Get(pages[k]) == kMapped) memset(a, 0, ps);
  }
  StreamFence();  // before the CONTINUE that maps these bytes into the guest
  return 0;
}

// pwritev of pages [i..j) (consecutive; zero pages as zeros) into the memfd at their offsets.
int PageInstaller::Pwrite(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int memfd, uint64_t ps,
                          std::string* what) {
  if (zeros_.size() < ps) zeros_.assign(ps, 0);
  std::vector<iovec> iov;
  for (size_t k = i; k < j; k++) iov.push_back({const_cast<uint8_t*>(data[k] != nullptr ? data[k] : zeros_.data()), ps});  // pwritev only reads
  off_t at = static_cast<off_t>(pages[i] * ps);
  size_t want = (j - i) * ps, done = 0;
  size_t v = 0;
  while (done < want) {
    ssize_t r = pwritev(memfd, iov.data() + v, static_cast<int>(std::min<size_t>(iov.size() - v, IOV_MAX)), at + static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      *what = "pwritev(memfd, page " + std::to_string(pages[i]) + ", " + std::to_string(j - i) + " pages)";
      return errno;
    }
    done += static_cast<size_t>(r);
    size_t skip = static_cast<size_t>(r);
    while (v < iov.size() && skip >= iov[v].iov_len) skip -= iov[v++].iov_len;
    if (v < iov.size()) {
      iov[v].iov_base = static_cast<uint8_t*>(iov[v].iov_base) + skip;
      iov[v].iov_len -= skip;
    }
  }
  return 0;
}

// The guest may run: a page appears whole or not at all. UFFDIO_ZEROPAGE for an all-zero run, else
// UFFDIO_COPY from a page-aligned staging buffer (the kernel wants src page aligned); a run that
// meets a page already there (EEXIST) is redone page by page, EEXIST then meaning "wake and go on".
int PageInstaller::Atomic(const std::vector<uint32_t>& pages, const std::vector<const uint8_t*>& data, size_t i, size_t j, int uffd, uint64_t base,
                          uint64_t ps, std::string* what) {
  // hugetlbfs has no UFFDIO_ZEROPAGE (EINVAL): its zero pages are a COPY from zeros (Copy fills them).
  // Assumes a page larger than the host's base page is hugetlbfs: the only large pages ppsim
  // registers (guest-connect.ts: shmem guests are on base pages).
  const bool zeroByCopy = Huge(ps);
  bool allZero = !zeroByCopy;
  for (size_t k = i; k < j && allZero; k++) allZero = data[k] == nullptr;
  uint64_t dst = base + pages[i] * ps, len = (j - i) * ps;
  int e = allZero ? ZeropageRange(uffd, dst, len) : Copy(uffd, dst, data, i, j, ps);
  if (e == 0) return 0;
  if (e != EEXIST) {
    *what = std::string(allZero ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY") + "(dst " + Hex(dst) + ", len " + std::to_string(len) + ")";
    return e;
  }
  for (size_t k = i; k < j; k++) {
    uint64_t d = base + pages[k] * ps;
    e = data[k] == nullptr && !zeroByCopy ? ZeropageRange(uffd, d, ps) : Copy(uffd, d, data, k, k + 1, ps);
    if (e == EEXIST) {
      uffdio_range r{d, ps};
      // The page is there: wake whoever waits on it. Failing to wake is not fatal (nobody may wait).
      (void)ioctl(uffd, UFFDIO_WAKE, &r);
      continue;
    }
    if (e != 0) {
      *what = std::string(data[k] == nullptr && !zeroByCopy ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY") + "(dst " + Hex(d) + ", len " + std::to_string(ps) + ")";
      return e;
    }
  }
  return 0;
}

bool PageInstaller::Huge(uint64_t ps) {
  return ps > static_cast<uint64_t>(sysconf(_SC_PAGESIZE));  // sysconf(_SC_PAGESIZE) cannot fail on Linux
}

// One UFFDIO_COPY per huge page, from where its bytes already are (the frame's buffer; zeros_ for a
// zero page): no staging copy of 2 MiB. The kernel checks only dst (and len) for alignment since
// the 2023 fix (6.6 or so) "page alignment is only a requirement for dst, not src" (docs/huge-pages.md); an
// older kernel refuses an unaligned src with EINVAL, and then the page goes through the staging
// buffer as before (stagedHuge_ counts them).
int PageInstaller::CopyOne(int uffd, uint64_t dst, const uint8_t* bytes, uint64_t ps) {
  if (bytes == nullptr) {
    if (zeros_.size() < ps) zeros_.assign(ps, 0);
    bytes = zeros_.data();
  }
  int e = CopyFrom(uffd, dst, bytes, ps);
  if (e != EINVAL || reinterpret_cast<uintptr_t>(bytes) % static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) == 0) {
    if (e == 0) directHuge_++;
    return e;
  }
  std::vector<const uint8_t*> one{bytes};
  e = Copy(uffd, dst, one, 0, 1, ps, true);
  if (e == 0) stagedHuge_++;
  return e;
}

int PageInstaller::CopyFrom(int uffd, uint64_t dst, const uint8_t* src, uint64_t len) {
  uffdio_copy c{};
  c.dst = dst;
  c.src = reinterpret_cast<uintptr_t>(src);  // our address space: UFFDIO_COPY copies from the caller
  c.len = len;
  for (;;) {
    if (ioctl(uffd, UFFDIO_COPY, &c) == 0) return 0;
    int e = errno;
    if (e == EAGAIN && c.copy > 0 && static_cast<uint64_t>(c.copy) < c.len) {
      c.dst += static_cast<uint64_t>(c.copy);
      c.src += static_cast<uint64_t>(c.copy);
      c.len -= static_cast<uint64_t>(c.copy);
      c.copy = 0;
      continue;
    }
    if (e == EINTR || e == EAGAIN) continue;
    return e;
  }
}

int PageInstaller::Copy(int uffd, uint64_t dst, const std::vector<const uint8_t*>& data, size_t i, size_t j, uint64_t ps, bool staged) {
  if (Huge(ps) && !staged) {
    // Page by page: a huge page's bytes are in place in the frame, and one ioctl per 2 MiB costs nothing beside the copy.
    for (size_t k = i; k < j; k++) {
      int e = CopyOne(uffd, dst + (k - i) * ps, data[k], ps);
      if (e != 0) return e;
    }
    return 0;
  }
  size_t len = (j - i) * ps;
  if (stage_ == nullptr || stageLen_ < len) {
    free(stage_);
    // aligned_alloc: size must be a multiple of the alignment (it is: whole pages).
    stage_ = static_cast<uint8_t*>(aligned_alloc(ps, len));
    stageLen_ = stage_ != nullptr ? len : 0;
    if (stage_ == nullptr) return ENOMEM;
  }
  for (size_t k = i; k < j; k++) {
    if (data[k] != nullptr) memcpy(stage_ + (k - i) * ps, data[k], ps);
    else memset(stage_ + (k - i) * ps, 0, ps);
  }
  return CopyFrom(uffd, dst, stage_, len);
}

}  // namespace ppsim
