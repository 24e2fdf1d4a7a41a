// benchInstall(mib, runPages, threads, how): what installing a page costs the
// destination once its guest may run, without a socket or Node in the loop —
// the two install modes' kernel work (docs/native.md "Install modes"). A
// memfd of `mib` MiB is mapped as a guest's view (registered MISSING|MINOR)
// and filled in runs of `runPages` by `threads` threads (interleaved runs),
// from a buffer laid out as a pages frame is (a 5-byte entry header before
// each page, so the data is not page aligned):
//   how 0 "copy":     memcpy into a page-aligned staging buffer, UFFDIO_COPY;
//   how 1 "continue": pwritev into the memfd, UFFDIO_CONTINUE;
//   how 2:            memcpy into a second, plain mapping (its faults allocate),
//                     UFFDIO_CONTINUE — what receiving straight into a mapping
//                     would add beyond the socket's copy.
// Returns { nsPerPage } (wall time / pages). The memfd is freed before returning.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../common/uapi.h"
#include "util.h"

namespace ppsim {

namespace {

uint64_t Now() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// One thread's share: runs t, t + threads, … ; 0 or the errno of the call that failed (*what names it).
int Fill(int how, int memfd, int uffd, uint8_t* guest, uint8_t* agent, size_t pages, size_t run, size_t t, size_t threads, size_t ps, std::string* what) {
  std::vector<uint8_t> frame(run * (ps + 5), 0x5a);
  uint8_t* stage = static_cast<uint8_t*>(aligned_alloc(ps, run * ps));  // size: whole pages, a multiple of ps
  if (stage == nullptr) return *what = "aligned_alloc", ENOMEM;
  std::vector<iovec> iov(run);
  int e = 0;
  for (size_t p = t * run; p + run <= pages && e == 0; p += run * threads) {
    uint64_t dst = reinterpret_cast<uintptr_t>(guest + p * ps);
    if (how == 0) {
      for (size_t k = 0; k < run; k++) memcpy(stage + k * ps, frame.data() + k * (ps + 5) + 5, ps);
      uffdio_copy c{};
      c.dst = dst;
      c.src = reinterpret_cast<uintptr_t>(stage);
      c.len = run * ps;
      if (ioctl(uffd, UFFDIO_COPY, &c) != 0) e = errno, *what = "UFFDIO_COPY";
      continue;
    }
    if (how == 1) {
      for (size_t k = 0; k < run; k++) iov[k] = {frame.data() + k * (ps + 5) + 5, ps};
      if (pwritev(memfd, iov.data(), static_cast<int>(run), static_cast<off_t>(p * ps)) != static_cast<ssize_t>(run * ps)) {
        e = errno != 0 ? errno : EIO, *what = "pwritev";
        break;
      }
    } else {
      for (size_t k = 0; k < run; k++) memcpy(agent + (p + k) * ps, frame.data() + k * (ps + 5) + 5, ps);
    }
    uffdio_continue c{};
    c.range.start = dst;
    c.range.len = run * ps;
    if (ioctl(uffd, UFFDIO_CONTINUE, &c) != 0) e = errno, *what = "UFFDIO_CONTINUE";
  }
  free(stage);
  return e;
}

Napi::Value BenchInstall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t mib = ArgU64(info, 0, "mib"), run = ArgU64(info, 1, "runPages"), threads = ArgU64(info, 2, "threads"), how = ArgU64(info, 3, "how");
  if (mib == 0 || mib > 4096 || run == 0 || run > 256 || threads == 0 || threads > 16 || how > 2) ThrowRange(env, "benchInstall(mib 1…4096, runPages 1…256, threads 1…16, how 0…2)");
  const size_t ps = static_cast<size_t>(sysconf(_SC_PAGESIZE)), bytes = mib << 20, pages = bytes / ps;
  int fd = memfd_create("bench-install", MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "ftruncate");
  }
  void* g = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* a = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  std::string what;
  int e = 0;
  if (g == MAP_FAILED || a == MAP_FAILED) e = errno, what = "mmap";
  else if (uffd < 0) e = errno, what = "userfaultfd";
  if (e == 0) {
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM;
    if (ioctl(uffd, UFFDIO_API, &api) != 0) e = errno, what = "UFFDIO_API";
  }
  if (e == 0) {
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uintptr_t>(g);
    reg.range.len = bytes;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) e = errno, what = "UFFDIO_REGISTER";
  }
  uint64_t ns = 0;
  if (e == 0) {
    std::vector<std::thread> ts;
    std::vector<int> errs(threads, 0);
    std::vector<std::string> whats(threads);
    uint64_t t0 = Now();
    for (size_t t = 0; t < threads; t++)
      ts.emplace_back([&, t] { errs[t] = Fill(static_cast<int>(how), fd, uffd, static_cast<uint8_t*>(g), static_cast<uint8_t*>(a), pages, run, t, threads, ps, &whats[t]); });
    for (auto& t : ts) t.join();
    ns = Now() - t0;
    for (size_t t = 0; t < threads && e == 0; t++)
      if (errs[t] != 0) e = errs[t], what = whats[t];
  }
  if (uffd >= 0) close(uffd);
  if (g != MAP_FAILED) munmap(g, bytes);
  if (a != MAP_FAILED) munmap(a, bytes);
  close(fd);
  if (e != 0) ThrowErrno(env, e, "benchInstall: " + what);
  Napi::Object o = Napi::Object::New(env);
  o.Set("nsPerPage", static_cast<double>(ns) / static_cast<double>(pages - pages % (run * threads)));
  return o;
}

}  // namespace

void InitBenchInstall(Napi::Env env, Napi::Object exports) { exports.Set("benchInstall", Napi::Function::New(env, BenchInstall)); }

}  // namespace ppsim
