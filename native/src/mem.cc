#include "mem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/memfd.h>  // MFD_HUGE_SHIFT (glibc's sys/mman.h has MFD_HUGETLB only)
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util.h"

namespace ppsim {

// ---- plain fd functions ----------------------------------------------------

static Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  uint64_t size = ArgU64(info, 1, "size");
  // Optional huge page size (0: none): a hugetlbfs file, as the guest makes for a huge-page
  // workload (native/guest/memory.cc); bench/loopback.ts measures the install path into one.
  uint64_t huge = info.Length() > 2 && !info[2].IsUndefined() ? ArgU64(info, 2, "hugePageSize") : 0;
  if (huge != 0 && ((huge & (huge - 1)) != 0 || huge < 4096)) ThrowRange(info.Env(), "hugePageSize must be 0 or a power of two >= 4096");
  // MFD_CLOEXEC: the agent spawns children; guest RAM must not leak into them. MFD_HUGETLB takes
  // log2(page size) at MFD_HUGE_SHIFT (linux/memfd.h: 26, checked against the kernel's uapi header).
  unsigned flags = MFD_CLOEXEC;
  if (huge != 0) flags |= MFD_HUGETLB | (static_cast<unsigned>(__builtin_ctzll(huge)) << MFD_HUGE_SHIFT);
  int fd = memfd_create(name.c_str(), flags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "memfd_create(" + name + (huge != 0 ? ", MFD_HUGETLB " + std::to_string(huge) + "-byte pages" : "") + ")");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    ThrowErrno(info.Env(), e, "ftruncate(memfd " + name + ", " + std::to_string(size) + ")");
  }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t size = ArgU64(info, 1, "size");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0)
    ThrowErrno(info.Env(), errno, "ftruncate(fd " + std::to_string(fd) + ", " + std::to_string(size) + ")");
  return info.Env().Undefined();
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  // close() errors other than EBADF leave the fd closed anyway (Linux); report all.
  if (close(fd) != 0) ThrowErrno(info.Env(), errno, "close(" + std::to_string(fd) + ")");
  return info.Env().Undefined();
}

static Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  // KEEP_SIZE is mandatory with PUNCH_HOLE; the range becomes a hole (a
  // missing page for userfaultfd MISSING mode again).
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(len)) != 0)
    ThrowErrno(info.Env(), errno,
               "fallocate(PUNCH_HOLE, fd " + std::to_string(fd) + ", offset " + Hex(off) + ", len " + std::to_string(len) + ")");
  return info.Env().Undefined();
}

// punchPages(fd, pages: Uint32Array ascending, pageSize): every page punched, one fallocate per
// run of consecutive pages, in one call — the switchover's stale pages at a destination (hundreds
// of thousands of scattered pages inside the downtime: the JS loop's call per run was dearer than
// the punch itself). Returns the number of fallocate calls.
static Napi::Value PunchPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Uint32Array pages = ArgU32Array(info, 1, "pages");
  uint64_t ps = ArgU64(info, 2, "pageSize");
  if (ps == 0 || (ps & (ps - 1)) != 0) ThrowRange(env, "pageSize must be a power of two");
  const size_t n = pages.ElementLength();
  for (size_t k = 1; k < n; k++)
    if (pages[k] <= pages[k - 1]) ThrowRange(env, "pages must be ascending without repeats (page " + std::to_string(pages[k]) + " after " + std::to_string(pages[k - 1]) + ")");
  uint64_t calls = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && pages[j] == pages[j - 1] + 1) j++;
    const uint64_t off = static_cast<uint64_t>(pages[i]) * ps, len = static_cast<uint64_t>(j - i) * ps;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(len)) != 0)
      ThrowErrno(env, errno, "fallocate(PUNCH_HOLE, fd " + std::to_string(fd) + ", offset " + Hex(off) + ", len " + std::to_string(len) + ")");
    calls++;
    i = j;
  }
  return Napi::Number::New(env, static_cast<double>(calls));
}

// pread of a memfd never allocates: a hole reads as zeros (shmem's read path
// does not insert a page), unlike a load through a mapping, which allocates a
// page-cache page. So pread is the safe way to read a page that may be missing.
static Napi::Value Pread(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t off = ArgU64(info, 1, "offset");
  uint64_t len = ArgU64(info, 2, "length");
  if (len > (1ull << 31)) ThrowRange(info.Env(), "pread length too large");
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(info.Env(), len);
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf.Data() + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(info.Env(), errno, "pread(fd " + std::to_string(fd) + ", offset " + Hex(off + done) + ")");
    if (n == 0) {  // past EOF: the rest reads as zeros, like a hole
      memset(buf.Data() + done, 0, len - done);
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  return buf;
}

static Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t off = ArgU64(info, 1, "offset");
  Bytes b = ArgBytes(info, 2, "data");
  uint64_t done = 0;
  while (done < b.len) {
    ssize_t n = pwrite(fd, b.data + done, b.len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(info.Env(), errno, "pwrite(fd " + std::to_string(fd) + ", offset " + Hex(off + done) + ")");
    done += static_cast<uint64_t>(n);
  }
  return info.Env().Undefined();
}

// Which of `count` pages from `firstPage` hold data in the memfd (1) or are holes (0), by lseek.
// Unbounded: SEEK_DATA then SEEK_HOLE per data extent, which learns a whole extent per pair but walks
// the page cache to the next hole wherever it is (in a fully written memfd, the end of it). Bounded:
// the extent is cut at the data page found, so each SEEK_DATA is O(1) on a present page and a skip
// over empty page-cache slots on a hole: the call costs O(count), not O(memory).
static Napi::Value MemfdDataPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t first = ArgU64(info, 1, "firstPage");
  uint64_t count = ArgU64(info, 2, "count");
  uint64_t ps = ArgU64(info, 3, "pageSize");
  if (ps == 0 || (ps & (ps - 1)) != 0) ThrowRange(env, "pageSize must be a power of two");
  if (count > (1u << 24)) ThrowRange(env, "count must be at most 2^24");
  const bool bounded = info.Length() > 4 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  Napi::Uint8Array out = Napi::Uint8Array::New(env, count);
  uint8_t* o = out.Data();
  memset(o, 0, count);
  const off_t end = static_cast<off_t>((first + count) * ps);
  off_t pos = static_cast<off_t>(first * ps);
  while (pos < end) {
    off_t d = lseek(fd, pos, SEEK_DATA);
    if (d < 0 && errno == ENXIO) break;  // no data at or after pos
    if (d < 0) ThrowErrno(env, errno, "lseek(SEEK_DATA, fd " + std::to_string(fd) + ", " + Hex(static_cast<uint64_t>(pos)) + ")");
    if (d >= end) break;
    off_t h = static_cast<off_t>((static_cast<uint64_t>(d) / ps + 1) * ps);  // bounded: this page alone
    if (!bounded) {
      h = lseek(fd, d, SEEK_HOLE);
      if (h < 0) ThrowErrno(env, errno, "lseek(SEEK_HOLE, fd " + std::to_string(fd) + ", " + Hex(static_cast<uint64_t>(d)) + ")");
    }
    if (h > end) h = end;
    // Data extents are page-granular in shmem; round outward all the same.
    uint64_t a = static_cast<uint64_t>(d) / ps, b = (static_cast<uint64_t>(h) + ps - 1) / ps;
    for (uint64_t p = a; p < b; p++) o[p - first] = 1;
    pos = h;
  }
  return out;
}

// residentPages(address, count, pageSize) -> Uint8Array: 1 for each page of a
// MAP_SHARED mapping of a memfd whose page is in the file's page cache, else 0,
// by mincore(2). Why not lseek(SEEK_DATA) (MemfdDataPages above): shmem's
// llseek takes the inode lock, which the source's punching thread holds for
// each fallocate, so the loop waited behind it; mincore looks the page cache
// up under RCU and takes no inode lock. For a shmem file "resident" equals
// "holds data" only while nothing is swapped out (a page on swap is data but
// not resident): the caller checks that no swap is on (src/real/source-port.ts).
// Assumes `address` is page-aligned and the range is one mapping the caller
// owns; an unmapped range fails with ENOMEM and touches nothing. mincore reads
// page tables and the page cache, never faults a page in.
static Napi::Value ResidentPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t addr = ArgU64(info, 0, "address");
  uint64_t count = ArgU64(info, 1, "count");
  uint64_t ps = ArgU64(info, 2, "pageSize");
  if (ps != static_cast<uint64_t>(sysconf(_SC_PAGESIZE))) ThrowRange(env, "pageSize must be the system page size (mincore's unit)");
  if (addr % ps != 0) ThrowRange(env, "address must be page-aligned");
  if (count > (1u << 24)) ThrowRange(env, "count must be at most 2^24");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, count);
  if (count == 0) return out;
  uint8_t* o = out.Data();
  if (mincore(reinterpret_cast<void*>(addr), count * ps, o) != 0)
    ThrowErrno(env, errno, "mincore(" + Hex(addr) + ", " + std::to_string(count) + " pages)");
  for (uint64_t i = 0; i < count; i++) o[i] &= 1;  // the other bits are reserved
  return out;
}

void InitMem(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole));
  exports.Set("punchPages", Napi::Function::New(env, PunchPages));
  exports.Set("memfdDataPages", Napi::Function::New(env, MemfdDataPages));
  exports.Set("residentPages", Napi::Function::New(env, ResidentPages));
  exports.Set("pread", Napi::Function::New(env, Pread));
  exports.Set("pwrite", Napi::Function::New(env, Pwrite));
  exports.Set("Mapping", Mapping::Init(env));
}

}  // namespace ppsim
