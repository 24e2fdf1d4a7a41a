// benchFaultRoundTrip(pages, toucherCpu, handlerCpu): the kernel's own
// userfaultfd round trip without Node in the loop. A toucher thread loads
// one word of each missing page in turn; a handler thread poll()s the uffd,
// reads the event and answers with UFFDIO_COPY (which wakes the toucher).
// CPUs < 0 leave a thread unpinned. Returns { nsPerFault }.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "../common/uapi.h"
#include "util.h"

namespace ppsim {

static void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);  // 0 = the calling thread
}

static uint64_t Now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

static Napi::Value BenchFaultRoundTrip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t pages = ArgU64(info, 0, "pages");
  int tcpu = info.Length() > 1 ? info[1].As<Napi::Number>().Int32Value() : -1;
  int hcpu = info.Length() > 2 ? info[2].As<Napi::Number>().Int32Value() : -1;
  const uint64_t ps = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  int memfd = memfd_create("bench", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, static_cast<off_t>(pages * ps)) != 0) ThrowErrno(env, errno, "memfd for bench");
  void* p = mmap(nullptr, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap for bench");
  auto* base = static_cast<uint8_t*>(p);
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) ThrowErrno(env, errno, "userfaultfd for bench");
  uffdio_api api{UFFD_API, 0, 0};
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uintptr_t>(base);
  reg.range.len = pages * ps;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(uffd, UFFDIO_API, &api) != 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
    ThrowErrno(env, errno, "UFFDIO_API/REGISTER for bench");
  std::vector<uint8_t> src(ps, 0x5a);
  std::atomic<bool> done{false};
  std::thread handler([&] {
    Pin(hcpu);
    uffd_msg m[16];
    while (!done.load()) {
      pollfd pf{uffd, POLLIN, 0};
      if (poll(&pf, 1, 100) <= 0) continue;
      ssize_t n = read(uffd, m, sizeof m);
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); i++) {
        uffdio_copy c{};
        c.dst = m[i].arg.pagefault.address & ~(ps - 1);
        c.src = reinterpret_cast<uintptr_t>(src.data());
        c.len = ps;
        ioctl(uffd, UFFDIO_COPY, &c);  // EEXIST cannot happen: each page faults once
      }
    }
  });
  uint64_t elapsed = 0, sink = 0;
  std::thread toucher([&] {
    Pin(tcpu);
    uint64_t t0 = Now();
    for (uint64_t i = 0; i < pages; i++) sink = *reinterpret_cast<volatile uint64_t*>(base + i * ps);  // page-aligned u64 load
    elapsed = Now() - t0;
  });
  toucher.join();
  done = true;
  handler.join();
  munmap(base, pages * ps);
  close(uffd);
  close(memfd);
  Napi::Object r = Napi::Object::New(env);
  r.Set("nsPerFault", static_cast<double>(elapsed) / static_cast<double>(pages));
  r.Set("contentOk", sink == 0x5a5a5a5a5a5a5a5aull);
  return r;
}

void InitBench(Napi::Env env, Napi::Object exports) {
  exports.Set("benchFaultRoundTrip", Napi::Function::New(env, BenchFaultRoundTrip));
}

}  // namespace ppsim
