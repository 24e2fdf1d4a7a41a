#include "memory.h"

#include <fcntl.h>
#include <linux/memfd.h>  // MFD_HUGE_SHIFT (glibc's sys/mman.h has MFD_HUGETLB only)
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/uapi.h"

namespace guest {

static std::string Err(const std::string& what) { return what + " failed: " + strerror(errno); }

// What to do when the kernel has too few free huge pages of this size.
static std::string NoHugePages(const Config& c) {
  const uint64_t kb = c.huge_page_size / 1024;
  return "; guest RAM needs " + std::to_string(c.mem_bytes / c.huge_page_size) + " free huge pages of " + std::to_string(kb) +
         " kB (see HugePages_Free in /proc/meminfo): as root, raise /sys/kernel/mm/hugepages/hugepages-" + std::to_string(kb) +
         "kB/nr_hugepages (ppsim real does so itself when it runs as root)";
}

// The agent's memfd at `fd`: shmem (F_GET_SEALS answers only for memfd/shmem files) of exactly
// the guest's size — a longer one would be memory nobody migrates, a shorter one SIGBUS.
static bool AdoptRam(const Config& c, int fd, Ram& ram, std::string& err) {
  if (c.huge_page_size != 0) return err = "--memfd: populated memory is for base pages, this guest is on huge pages", false;
  if (fcntl(fd, F_GET_SEALS) < 0) return err = Err("fcntl(F_GET_SEALS, --memfd " + std::to_string(fd) + "): not a memfd"), false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return err = Err("fstat(--memfd " + std::to_string(fd) + ")"), false;
  if (static_cast<uint64_t>(st.st_size) != c.mem_bytes)
    return err = "--memfd " + std::to_string(fd) + " is " + std::to_string(st.st_size) + " bytes, the guest's RAM " + std::to_string(c.mem_bytes), false;
  // Not inherited further: we exec nothing, CLOEXEC for hygiene as for our own memfd.
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return err = Err("fcntl(F_SETFD, --memfd)"), false;
  ram.memfd = fd;
  return true;
}

bool CreateRam(const Config& c, int given, Ram& ram, std::string& err) {
  if (given >= 0) {
    if (!AdoptRam(c, given, ram, err)) return false;
  } else {
    // No MFD_CLOEXEC is needed either way: we exec nothing. CLOEXEC for hygiene.
    // MFD_HUGETLB encodes log2(huge page size) at MFD_HUGE_SHIFT; the config
    // checked it is a power of two, and an unsupported size fails with EINVAL.
    unsigned flags = MFD_CLOEXEC;
    if (c.huge_page_size != 0) flags |= MFD_HUGETLB | (static_cast<unsigned>(__builtin_ctzll(c.huge_page_size)) << MFD_HUGE_SHIFT);
    ram.memfd = memfd_create("ppsim-guest-ram", flags);
    if (ram.memfd < 0) {
      err = Err(c.huge_page_size != 0 ? "memfd_create(MFD_HUGETLB, " + std::to_string(c.huge_page_size) + "-byte pages)" : "memfd_create");
      if (c.huge_page_size != 0 && errno == EINVAL) err += "; this kernel has no hugetlb pages of that size (ls /sys/kernel/mm/hugepages)";
      return false;
    }
    if (ftruncate(ram.memfd, static_cast<off_t>(c.mem_bytes)) != 0) return err = Err("ftruncate(guest RAM)"), false;
  }
  // hugetlbfs reserves the pages of a shared mapping at mmap: too few free ones is ENOMEM here, not a SIGBUS later.
  void* p = mmap(nullptr, c.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, ram.memfd, 0);
  if (p == MAP_FAILED) {
    err = Err("mmap(guest RAM, MAP_SHARED)");
    if (c.huge_page_size != 0 && errno == ENOMEM) err += NoHugePages(c);
    return false;
  }
  ram.base = static_cast<uint8_t*>(p);
  ram.bytes = c.mem_bytes;
  return true;
}

void FillInitial(const Config& c, Ram& ram) {
  const uint64_t words = c.page_size / 8;
  for (uint64_t p = 0; p < c.pages; p++) {
    if (InitiallyZero(c, p)) continue;  // untouched: stays a hole
    // base is page aligned (mmap) and page_size a multiple of 8: aligned u64 stores.
    auto* w = reinterpret_cast<uint64_t*>(ram.base + p * c.page_size);
    uint64_t x = Mix64(c.seed ^ Mix64(p));
    for (uint64_t i = 0; i < words; i++) w[i] = Mix64(x + i);
    w[0] |= 1;  // guarantee a non-zero page
  }
}

static int OpenUffd() {
  // O_NONBLOCK: the agent poll()s this file description (shared via SCM_RIGHTS).
  int flags = O_CLOEXEC | O_NONBLOCK;
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int e = errno;
    close(dev);
    if (fd >= 0) return fd;
    errno = e;
  }
  return static_cast<int>(syscall(SYS_userfaultfd, flags));
}

bool SetupUffd(Role role, bool minor, bool wp, bool huge, Ram& ram, std::string& err) {
  if (role == Role::Source && !wp) return true;
  ram.uffd = OpenUffd();
  if (ram.uffd < 0) {
    err = Err("userfaultfd (/dev/userfaultfd and syscall)");
    if (errno == EPERM || errno == EACCES)
      err += "; grant access: run as root, `sysctl vm.unprivileged_userfaultfd=1`, or CAP_SYS_PTRACE";
    return false;
  }
  uffdio_api api{};
  api.api = UFFD_API;
  if (role == Role::Source) {
    // WP on shmem needs WP_HUGETLBFS_SHMEM; WP_ASYNC resolves write faults in
    // the kernel (no message, the PTE just loses its WP bit = "written");
    // WP_UNPOPULATED lets holes (never-touched zero pages) be protected too.
    api.features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    ram.mode = UFFDIO_REGISTER_MODE_WP;
  } else {
    api.features = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MISSING_SHMEM | (minor ? UFFD_FEATURE_MINOR_SHMEM : 0);
    // hugetlbfs memory: its own feature bits; faults then come a huge page at a time.
    if (huge) api.features = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MISSING_HUGETLBFS | (minor ? UFFD_FEATURE_MINOR_HUGETLBFS : 0);
    ram.mode = UFFDIO_REGISTER_MODE_MISSING | (minor ? UFFDIO_REGISTER_MODE_MINOR : 0);
  }
  uint64_t want = api.features;
  if (ioctl(ram.uffd, UFFDIO_API, &api) != 0) return err = Err("UFFDIO_API(features " + std::to_string(want) + ")"), false;
  ram.features = api.features;
  uffdio_register reg{};
  // Pointer -> integer: the registered range is our own mapping.
  reg.range.start = reinterpret_cast<uintptr_t>(ram.base);
  reg.range.len = ram.bytes;
  reg.mode = ram.mode;
  if (ioctl(ram.uffd, UFFDIO_REGISTER, &reg) != 0) return err = Err("UFFDIO_REGISTER(guest RAM)"), false;
  if (role == Role::Source) {
    // Arm tracking: every page starts clean (protected); the first write to
    // each one is then visible to PAGEMAP_SCAN as PAGE_IS_WRITTEN.
    uffdio_writeprotect w{};
    w.range = reg.range;
    w.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (ioctl(ram.uffd, UFFDIO_WRITEPROTECT, &w) != 0) return err = Err("UFFDIO_WRITEPROTECT(guest RAM)"), false;
  }
  return true;
}

bool HashRam(const Ram& ram, uint64_t& out, std::string& err) {
  // xxh64-style accumulation in 4 lanes over little-endian u64 words, then
  // a merge and avalanche. Not xxh64-compatible; defined in docs/native.md.
  const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t acc[4] = {P1 + P2, P2, 0, 0 - P1};
  std::vector<uint64_t> buf(1 << 17);  // 1 MiB
  uint64_t off = 0;
  while (off < ram.bytes) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size() * 8, ram.bytes - off));
    ssize_t n = pread(ram.memfd, buf.data(), want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return err = Err("pread(guest RAM)"), false;
    if (n == 0) {  // memfd shorter than expected: count the rest as zeros
      std::memset(buf.data(), 0, want);
      n = static_cast<ssize_t>(want);
    }
    size_t words = static_cast<size_t>(n) / 8;  // mem_bytes is a multiple of page_size, so of 8
    uint64_t first = off / 8;  // lanes follow the global word index, whatever the read sizes
    for (size_t i = 0; i < words; i++) {
      uint64_t& a = acc[(first + i) & 3];
      a += buf[i] * P2;
      a = (a << 31) | (a >> 33);
      a *= P1;
    }
    off += static_cast<uint64_t>(n);
  }
  uint64_t h = ram.bytes;
  for (int i = 0; i < 4; i++) h = Mix64(h ^ acc[i]);
  out = h;
  return true;
}

}  // namespace guest
