// userfaultfd ioctls. The uffd may belong to another process (the guest hands
// its uffd over SCM_RIGHTS): destination addresses are in the uffd's address
// space (the guest's), source buffers in ours — that is how the kernel
// defines UFFDIO_COPY (copy_from_user from the caller, install into ctx->mm).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "../common/uapi.h"
#include "mem.h"
#include "util.h"

namespace ppsim {

static std::string Range(uint64_t start, uint64_t len) { return "start " + Hex(start) + ", len " + std::to_string(len); }

// uffdCreate({ nonblock = true, userModeOnly = false }) -> fd
// First /dev/userfaultfd (USERFAULTFD_IOC_NEW, Linux 6.1+: access is by file
// mode, not by sysctl), then the userfaultfd(2) syscall.
static Napi::Value UffdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool nonblock = true, userOnly = false;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Has("nonblock")) nonblock = o.Get("nonblock").ToBoolean();
    if (o.Has("userModeOnly")) userOnly = o.Get("userModeOnly").ToBoolean();
  }
  // O_NONBLOCK matters: poll() on a blocking uffd returns POLLERR.
  int flags = O_CLOEXEC | (nonblock ? O_NONBLOCK : 0) | (userOnly ? UFFD_USER_MODE_ONLY : 0);
  int devErr = 0;
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    // USERFAULTFD_IOC_NEW takes the userfaultfd(2) flags as its argument.
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    int e = errno;
    close(dev);
    if (fd >= 0) return Napi::Number::New(env, fd);
    devErr = e;
  } else {
    devErr = errno;
  }
  long fd = syscall(SYS_userfaultfd, flags);
  if (fd >= 0) return Napi::Number::New(env, static_cast<double>(fd));
  int e = errno;
  std::string what = "userfaultfd (/dev/userfaultfd: " + ErrnoName(devErr) + "; syscall)";
  if (e == EPERM || e == EACCES)
    what += " — grant access: run as root, or `sysctl vm.unprivileged_userfaultfd=1`, or give the process CAP_SYS_PTRACE, or make /dev/userfaultfd readable+writable by this user";
  ThrowErrno(env, e, what);
}

// uffdApi(fd, features) -> { features: bigint, ioctls: bigint }
static Napi::Value UffdApi(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t features = ArgU64Or(info, 1, "features", 0);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  // The kernel reads api/features and writes back the supported set.
  if (ioctl(fd, UFFDIO_API, &api) != 0)
    ThrowErrno(info.Env(), errno, "UFFDIO_API(features " + Hex(features) + ")");
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("features", U64(info.Env(), api.features));
  r.Set("ioctls", U64(info.Env(), api.ioctls));
  return r;
}

// uffdRegister(fd, start, len, mode) -> ioctls bitmask (bigint)
static Napi::Value UffdRegister(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), len = ArgU64(info, 2, "len"), mode = ArgU64(info, 3, "mode");
  uffdio_register r{};
  r.range.start = start;
  r.range.len = len;
  r.mode = mode;
  if (ioctl(fd, UFFDIO_REGISTER, &r) != 0)
    ThrowErrno(info.Env(), errno, "UFFDIO_REGISTER(" + Range(start, len) + ", mode " + Hex(mode) + ")");
  return U64(info.Env(), r.ioctls);
}

static Napi::Value UffdUnregister(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), len = ArgU64(info, 2, "len");
  uffdio_range r{start, len};
  if (ioctl(fd, UFFDIO_UNREGISTER, &r) != 0)
    ThrowErrno(info.Env(), errno, "UFFDIO_UNREGISTER(" + Range(start, len) + ")");
  return info.Env().Undefined();
}

// Shared by the two UFFDIO_COPY entry points. A short copy (copy > 0 but <
// len, errno EAGAIN) is retried from where it stopped; any other failure
// throws with the errno (EEXIST: already installed; ENOENT: the mapping
// changed; ESRCH: the guest's mm is gone).
static uint64_t DoCopy(Napi::Env env, int fd, uint64_t dst, const uint8_t* src, uint64_t len, uint64_t mode) {
  uint64_t done = 0;
  while (done < len) {
    uffdio_copy c{};
    c.dst = dst + done;
    // Pointer -> integer: the kernel takes the source as a user address in
    // the calling process.
    c.src = reinterpret_cast<uintptr_t>(src + done);
    c.len = len - done;
    c.mode = mode;
    if (ioctl(fd, UFFDIO_COPY, &c) == 0) return len;
    int e = errno;
    if (e == EAGAIN && c.copy > 0) {
      done += static_cast<uint64_t>(c.copy);
      continue;
    }
    if (e == EINTR) continue;
    ThrowErrno(env, e, "UFFDIO_COPY(dst " + Hex(dst + done) + ", len " + std::to_string(len - done) + ")");
  }
  return done;
}

// uffdCopy(fd, dst, data: Uint8Array, mode = 0) -> bytes copied
static Napi::Value UffdCopy(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t dst = ArgU64(info, 1, "dst");
  Bytes b = ArgBytes(info, 2, "data");
  uint64_t mode = ArgU64Or(info, 3, "mode", 0);
  return Napi::Number::New(info.Env(), static_cast<double>(DoCopy(info.Env(), fd, dst, b.data, b.len, mode)));
}

// uffdCopyFromMapping(fd, dst, mapping, offset, len, mode = 0): zero-copy
// from another memfd mapping (e.g. a source guest's RAM in a local test).
static Napi::Value UffdCopyFromMapping(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t dst = ArgU64(info, 1, "dst");
  if (info.Length() < 3 || !info[2].IsObject() || !info[2].As<Napi::Object>().InstanceOf(Mapping::ctor->Value()))
    ThrowType(info.Env(), "mapping must be a Mapping");
  Mapping* m = Mapping::Unwrap(info[2].As<Napi::Object>());
  uint64_t off = ArgU64(info, 3, "offset"), len = ArgU64(info, 4, "len");
  uint64_t mode = ArgU64Or(info, 5, "mode", 0);
  uint8_t* src = m->Checked(info.Env(), off, len, "uffdCopyFromMapping");
  return Napi::Number::New(info.Env(), static_cast<double>(DoCopy(info.Env(), fd, dst, src, len, mode)));
}

// UFFDIO_ZEROPAGE and UFFDIO_CONTINUE take the same request shape (a range and
// a mode) and answer in one field of it: how many bytes they mapped. Assumes
// the ioctl fills `*result` before it returns, as both do on success.
template <typename Req, typename Result>
static Napi::Value RangeIoctl(const Napi::CallbackInfo& info, unsigned long op, const char* name, Result Req::*result) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), len = ArgU64(info, 2, "len"), mode = ArgU64Or(info, 3, "mode", 0);
  for (;;) {
    Req r{};
    r.range.start = start;
    r.range.len = len;
    r.mode = mode;
    if (ioctl(fd, op, &r) == 0) return Napi::Number::New(info.Env(), static_cast<double>(r.*result));
    if (errno == EINTR) continue;
    ThrowErrno(info.Env(), errno, std::string(name) + "(" + Range(start, len) + ")");
  }
}

static Napi::Value UffdZeropage(const Napi::CallbackInfo& info) {
  return RangeIoctl(info, UFFDIO_ZEROPAGE, "UFFDIO_ZEROPAGE", &uffdio_zeropage::zeropage);
}

// UFFDIO_CONTINUE: maps the page already in the page cache (minor fault path).
static Napi::Value UffdContinue(const Napi::CallbackInfo& info) {
  return RangeIoctl(info, UFFDIO_CONTINUE, "UFFDIO_CONTINUE", &uffdio_continue::mapped);
}

static Napi::Value UffdWake(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), len = ArgU64(info, 2, "len");
  uffdio_range r{start, len};
  if (ioctl(fd, UFFDIO_WAKE, &r) != 0) ThrowErrno(info.Env(), errno, "UFFDIO_WAKE(" + Range(start, len) + ")");
  return info.Env().Undefined();
}

// uffdWriteProtect(fd, start, len, mode): mode WP(1) protects, 0 unprotects;
// DONTWAKE(2).
static Napi::Value UffdWriteProtect(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), len = ArgU64(info, 2, "len"), mode = ArgU64(info, 3, "mode");
  uffdio_writeprotect w{};
  w.range.start = start;
  w.range.len = len;
  w.mode = mode;
  if (ioctl(fd, UFFDIO_WRITEPROTECT, &w) != 0)
    ThrowErrno(info.Env(), errno, "UFFDIO_WRITEPROTECT(" + Range(start, len) + ", mode " + Hex(mode) + ")");
  return info.Env().Undefined();
}

void InitUffd(Napi::Env env, Napi::Object exports) {
  exports.Set("uffdCreate", Napi::Function::New(env, UffdCreate));
  exports.Set("uffdApi", Napi::Function::New(env, UffdApi));
  exports.Set("uffdRegister", Napi::Function::New(env, UffdRegister));
  exports.Set("uffdUnregister", Napi::Function::New(env, UffdUnregister));
  exports.Set("uffdCopy", Napi::Function::New(env, UffdCopy));
  exports.Set("uffdCopyFromMapping", Napi::Function::New(env, UffdCopyFromMapping));
  exports.Set("uffdZeropage", Napi::Function::New(env, UffdZeropage));
  exports.Set("uffdContinue", Napi::Function::New(env, UffdContinue));
  exports.Set("uffdWake", Napi::Function::New(env, UffdWake));
  exports.Set("uffdWriteProtect", Napi::Function::New(env, UffdWriteProtect));

  // Constants, as numbers (all < 2^32).
  Napi::Object c = Napi::Object::New(env);
  c.Set("UFFD_FEATURE_PAGEFAULT_FLAG_WP", UFFD_FEATURE_PAGEFAULT_FLAG_WP);
  c.Set("UFFD_FEATURE_MISSING_SHMEM", UFFD_FEATURE_MISSING_SHMEM);
  c.Set("UFFD_FEATURE_MISSING_HUGETLBFS", UFFD_FEATURE_MISSING_HUGETLBFS);  // 1<<4 in the uapi header
  c.Set("UFFD_FEATURE_THREAD_ID", UFFD_FEATURE_THREAD_ID);
  c.Set("UFFD_FEATURE_MINOR_SHMEM", UFFD_FEATURE_MINOR_SHMEM);
  c.Set("UFFD_FEATURE_EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS);
  c.Set("UFFD_FEATURE_WP_HUGETLBFS_SHMEM", UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
  c.Set("UFFD_FEATURE_WP_UNPOPULATED", UFFD_FEATURE_WP_UNPOPULATED);
  c.Set("UFFD_FEATURE_WP_ASYNC", UFFD_FEATURE_WP_ASYNC);
  c.Set("UFFD_FEATURE_MOVE", UFFD_FEATURE_MOVE);
  c.Set("UFFDIO_REGISTER_MODE_MISSING", static_cast<double>(UFFDIO_REGISTER_MODE_MISSING));
  c.Set("UFFDIO_REGISTER_MODE_WP", static_cast<double>(UFFDIO_REGISTER_MODE_WP));
  c.Set("UFFDIO_REGISTER_MODE_MINOR", static_cast<double>(UFFDIO_REGISTER_MODE_MINOR));
  c.Set("UFFDIO_COPY_MODE_DONTWAKE", static_cast<double>(UFFDIO_COPY_MODE_DONTWAKE));
  c.Set("UFFDIO_COPY_MODE_WP", static_cast<double>(UFFDIO_COPY_MODE_WP));
  c.Set("UFFDIO_ZEROPAGE_MODE_DONTWAKE", static_cast<double>(UFFDIO_ZEROPAGE_MODE_DONTWAKE));
  c.Set("UFFDIO_CONTINUE_MODE_DONTWAKE", static_cast<double>(UFFDIO_CONTINUE_MODE_DONTWAKE));
  c.Set("UFFDIO_WRITEPROTECT_MODE_WP", static_cast<double>(UFFDIO_WRITEPROTECT_MODE_WP));
  c.Set("UFFDIO_WRITEPROTECT_MODE_DONTWAKE", static_cast<double>(UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
  c.Set("UFFD_PAGEFAULT_FLAG_WRITE", UFFD_PAGEFAULT_FLAG_WRITE);
  c.Set("UFFD_PAGEFAULT_FLAG_WP", UFFD_PAGEFAULT_FLAG_WP);
  c.Set("UFFD_PAGEFAULT_FLAG_MINOR", UFFD_PAGEFAULT_FLAG_MINOR);
  c.Set("UFFD_EVENT_PAGEFAULT", UFFD_EVENT_PAGEFAULT);
  c.Set("PAGE_IS_WPALLOWED", static_cast<double>(ppsim_uapi::PAGE_IS_WPALLOWED));
  c.Set("PAGE_IS_WRITTEN", static_cast<double>(ppsim_uapi::PAGE_IS_WRITTEN));
  c.Set("PAGE_IS_FILE", static_cast<double>(ppsim_uapi::PAGE_IS_FILE));
  c.Set("PAGE_IS_PRESENT", static_cast<double>(ppsim_uapi::PAGE_IS_PRESENT));
  c.Set("PAGE_IS_SWAPPED", static_cast<double>(ppsim_uapi::PAGE_IS_SWAPPED));
  c.Set("PAGE_IS_PFNZERO", static_cast<double>(ppsim_uapi::PAGE_IS_PFNZERO));
  c.Set("PAGE_IS_HUGE", static_cast<double>(ppsim_uapi::PAGE_IS_HUGE));
  c.Set("PAGE_IS_SOFT_DIRTY", static_cast<double>(ppsim_uapi::PAGE_IS_SOFT_DIRTY));
  c.Set("PM_SCAN_WP_MATCHING", static_cast<double>(ppsim_uapi::PM_SCAN_WP_MATCHING));
  c.Set("PM_SCAN_CHECK_WPASYNC", static_cast<double>(ppsim_uapi::PM_SCAN_CHECK_WPASYNC));
  c.Set("PAGE_SIZE", static_cast<double>(sysconf(_SC_PAGESIZE)));
  exports.Set("constants", c);
}

}  // namespace ppsim
