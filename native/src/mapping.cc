// Mapping (mem.h): a memfd mapped shared in this process, its copies in and out, and its work on
// libuv pool threads (a touch that may wait in a userfaultfd fault, the populate of a memfd).
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "mem.h"
#include "util.h"

namespace ppsim {

Napi::FunctionReference* Mapping::ctor = nullptr;

Napi::Function Mapping::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Mapping",
                                 {InstanceAccessor<&Mapping::Address>("address"),
                                  InstanceAccessor<&Mapping::Length>("length"),
                                  InstanceAccessor<&Mapping::Mapped>("mapped"),
                                  InstanceMethod<&Mapping::Read>("read"),
                                  InstanceMethod<&Mapping::ReadInto>("readInto"),
                                  InstanceMethod<&Mapping::Write>("write"),
                                  InstanceMethod<&Mapping::ReadU64>("readU64"),
                                  InstanceMethod<&Mapping::WriteU64>("writeU64"),
                                  InstanceMethod<&Mapping::TouchAsync>("touchAsync"),
                                  InstanceMethod<&Mapping::PopulateAsync>("populateAsync"),
                                  InstanceMethod<&Mapping::Unmap>("unmap")});
  ctor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

// new Mapping(fd, length, offset = 0): mmap(PROT_READ|PROT_WRITE, MAP_SHARED).
Mapping::Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t len = ArgU64(info, 1, "length");
  uint64_t off = ArgU64Or(info, 2, "offset", 0);
  if (len == 0) ThrowRange(info.Env(), "mmap length must be > 0");
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(off));
  if (p == MAP_FAILED)
    ThrowErrno(info.Env(), errno, "mmap(MAP_SHARED, fd " + std::to_string(fd) + ", len " + std::to_string(len) + ", offset " + Hex(off) + ")");
  addr_ = static_cast<uint8_t*>(p);
  len_ = len;
}

Mapping::~Mapping() {
  // GC of the handle unmaps; an async touch holds a reference to the JS
  // object (see TouchAsync), so this never runs while one is in flight.
  if (addr_ != nullptr) munmap(addr_, len_);
}

uint8_t* Mapping::Checked(Napi::Env env, uint64_t offset, uint64_t len, const char* what) {
  if (addr_ == nullptr) ThrowErrno(env, EBADF, std::string(what) + " on an unmapped Mapping");
  if (offset > len_ || len > len_ - offset)
    ThrowRange(env, std::string(what) + ": range [" + Hex(offset) + ", +" + std::to_string(len) + ") outside mapping of " +
                        std::to_string(len_) + " bytes");
  return addr_ + offset;
}

Napi::Value Mapping::Address(const Napi::CallbackInfo& info) {
  return U64(info.Env(), reinterpret_cast<uintptr_t>(addr_));
}
Napi::Value Mapping::Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(len_)); }
Napi::Value Mapping::Mapped(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), addr_ != nullptr); }

// Copies out. NOTE: a load through a mapping of a memfd hole allocates the
// page; never read a destination page that is not installed yet this way.
Napi::Value Mapping::Read(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t len = ArgU64(info, 1, "length");
  uint8_t* p = Checked(info.Env(), off, len, "Mapping.read");
  return Napi::Buffer<uint8_t>::Copy(info.Env(), p, len);
}

Napi::Value Mapping::ReadInto(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  Bytes b = ArgBytes(info, 1, "target");
  uint8_t* p = Checked(info.Env(), off, b.len, "Mapping.readInto");
  memcpy(b.data, p, b.len);
  return info.Env().Undefined();
}

// Copies in. See DESIGN.md: at a running destination registered for MISSING
// only, use UFFDIO_COPY instead, or a guest access can see a half-written page.
Napi::Value Mapping::Write(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  Bytes b = ArgBytes(info, 1, "data");
  uint8_t* p = Checked(info.Env(), off, b.len, "Mapping.write");
  memcpy(p, b.data, b.len);
  return info.Env().Undefined();
}

Napi::Value Mapping::ReadU64(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  if (off % 8 != 0) ThrowRange(info.Env(), "readU64 offset must be 8-byte aligned");
  // Aligned (checked above) and inside the mapping (Checked): a plain load.
  auto* p = reinterpret_cast<volatile uint64_t*>(Checked(info.Env(), off, 8, "Mapping.readU64"));
  return U64(info.Env(), *p);
}

Napi::Value Mapping::WriteU64(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  uint64_t v = ArgU64(info, 1, "value");
  if (off % 8 != 0) ThrowRange(info.Env(), "writeU64 offset must be 8-byte aligned");
  auto* p = reinterpret_cast<volatile uint64_t*>(Checked(info.Env(), off, 8, "Mapping.writeU64"));
  *p = v;
  return info.Env().Undefined();
}

// Pool-thread work on a Mapping that ends in a Promise: pins the mapping (a reference to its JS
// object, and `inflight`, which munmap and Release refuse while it is > 0) until it settles.
class PinnedWorker : public Napi::AsyncWorker {
 public:
  PinnedWorker(Napi::Env env, Mapping* m, Napi::Object self) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), m_(m) {
    self_ = Napi::Persistent(self);  // keeps the Mapping alive (and mapped, see Unmap)
    m_->inflight++;
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  Napi::Promise Start() {
    Napi::Promise pr = Promise();
    Queue();  // the worker deletes itself once settled
    return pr;
  }

 protected:
  // The value to resolve with, on the JS thread after Execute (or throw a JS error to reject).
  virtual Napi::Value Result() = 0;
  void OnOK() override {
    m_->inflight--;
    try {
      deferred_.Resolve(Result());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    m_->inflight--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  Mapping* m_;
};

// touchAsync(offset, value?): loads (or stores, when value is given) one
// aligned u64 on a libuv pool thread and resolves with the value seen. Its
// purpose is to fault on a userfaultfd-registered range without blocking the
// event loop: the pool thread sleeps in the kernel until the fault is served.
class TouchWorker : public PinnedWorker {
 public:
  TouchWorker(Napi::Env env, Mapping* m, Napi::Object self, volatile uint64_t* p, bool store, uint64_t v)
      : PinnedWorker(env, m, self), p_(p), store_(store), v_(v) {}
  void Execute() override {
    if (store_) *p_ = v_;
    result_ = *p_;
  }

 protected:
  Napi::Value Result() override { return U64(Env(), result_); }

 private:
  volatile uint64_t* p_;
  bool store_;
  uint64_t v_;
  uint64_t result_ = 0;
};

Napi::Value Mapping::TouchAsync(const Napi::CallbackInfo& info) {
  uint64_t off = ArgU64(info, 0, "offset");
  bool store = info.Length() > 1 && !info[1].IsUndefined();
  uint64_t v = store ? ArgU64(info, 1, "value") : 0;
  if (off % 8 != 0) ThrowRange(info.Env(), "touchAsync offset must be 8-byte aligned");
  auto* p = reinterpret_cast<volatile uint64_t*>(Checked(info.Env(), off, 8, "Mapping.touchAsync"));
  return (new TouchWorker(info.Env(), this, info.This().As<Napi::Object>(), p, store, v))->Start();
}

// populateAsync() -> Promise<void>: every page of the mapping faulted in writable
// (MADV_POPULATE_WRITE), on a libuv pool thread: pages a memfd does not have yet are allocated
// and zeroed — a first write to each, unlike fallocate, whose pages are cleared only when first
// used — and all of them end mapped here, so that stores into the mapping later neither fault
// nor take a lock (dest-prealloc.ts: a GiB takes a second where fresh memory is slow).
class PopulateWorker : public PinnedWorker {
 public:
  PopulateWorker(Napi::Env env, Mapping* m, Napi::Object self, uint8_t* p, uint64_t len) : PinnedWorker(env, m, self), p_(p), len_(len) {}
  void Execute() override {
    // Base pages: a punch of one 4 KiB page of a huge shmem folio (shmem_enabled=always) would zero
    // or split the folio under pages the guest maps. Advice only: "force" overrides it.
    (void)madvise(p_, len_, MADV_NOHUGEPAGE);
    while (madvise(p_, len_, MADV_POPULATE_WRITE) != 0) {
      if (errno == EINTR) continue;  // the pages done stay done; the rest is faulted in again
      errno_ = errno;
      return;
    }
  }

 protected:
  Napi::Value Result() override {
    if (errno_ != 0) throw ErrnoError(Env(), errno_, "madvise(MADV_POPULATE_WRITE, " + std::to_string(len_) + " bytes)");
    return Env().Undefined();
  }

 private:
  uint8_t* p_;
  uint64_t len_;
  int errno_ = 0;
};

Napi::Value Mapping::PopulateAsync(const Napi::CallbackInfo& info) {
  uint8_t* p = Checked(info.Env(), 0, len_, "Mapping.populateAsync");
  return (new PopulateWorker(info.Env(), this, info.This().As<Napi::Object>(), p, len_))->Start();
}

uint8_t* Mapping::Release(Napi::Env env, uint64_t* len) {
  uint8_t* p = Checked(env, 0, len_, "Mapping.release");
  if (inflight.load() > 0) ThrowErrno(env, EBUSY, "Mapping.release while an async touch or populate is in flight");
  *len = len_;
  addr_ = nullptr;
  return p;
}

Napi::Value Mapping::Unmap(const Napi::CallbackInfo& info) {
  if (addr_ == nullptr) return info.Env().Undefined();
  // A pool thread may be blocked in a fault on this range; unmapping under it
  // would turn its pending load into SIGSEGV.
  if (inflight.load() > 0) ThrowErrno(info.Env(), EBUSY, "munmap while a touchAsync is in flight");
  if (munmap(addr_, len_) != 0) ThrowErrno(info.Env(), errno, "munmap(" + Hex(reinterpret_cast<uintptr_t>(addr_)) + ")");
  addr_ = nullptr;
  return info.Env().Undefined();
}

}  // namespace ppsim
