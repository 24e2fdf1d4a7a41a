// FaultReader: one native thread per uffd poll()s it and hands batches of
// events to a JS callback through a ThreadSafeFunction, so the event loop
// never blocks on the uffd. stop() wakes the thread through an eventfd,
// joins it and releases the TSFN.
// With a fault lane attached (setLane, fault_lane.h) and armed, the missing
// faults of each read go to the lane instead: it requests them on its socket
// from this thread and tells JS of them in order with its installs.
// With a zero-hole table (setHoles, zero_holes.h), a missing fault on a zero
// page the bulk receiver left a hole is answered here, with UFFDIO_ZEROPAGE,
// and goes nowhere else; every other missing fault is marked as sent on.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../common/uapi.h"
#include "fault_lane.h"
#include "util.h"
#include "zero_holes.h"

namespace ppsim {

struct FaultEvent {
  uint8_t event;
  uint64_t flags;
  uint64_t address;
  uint32_t tid;
};
struct Batch {
  std::vector<FaultEvent> events;
  // CLOCK_MONOTONIC µs right after the read(): process.hrtime() is the same
  // clock, so JS can see how long the batch waited for the event loop.
  double read_us = 0;
  int err = 0;  // non-zero: the reader stopped on this errno
  std::string what;
};

class FaultReader : public Napi::ObjectWrap<FaultReader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "FaultReader",
                       {InstanceMethod<&FaultReader::Stop>("stop"), InstanceMethod<&FaultReader::Ref>("ref"),
                        InstanceMethod<&FaultReader::Unref>("unref"), InstanceMethod<&FaultReader::SetLane>("setLane"),
                        InstanceMethod<&FaultReader::SetHoles>("setHoles"), InstanceMethod<&FaultReader::ZeroFaults>("zeroFaults"),
                        InstanceMethod<&FaultReader::Tid>("tid")});
  }

  // new FaultReader(uffd, callback(err: Error|null, events: FaultEvent[]), maxBatch = 256)
  explicit FaultReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FaultReader>(info) {
    Napi::Env env = info.Env();
    uffd_ = ArgFd(info, 0, "uffd");
    if (info.Length() < 2 || !info[1].IsFunction()) ThrowType(env, "callback must be a function");
    max_ = static_cast<size_t>(ArgU64Or(info, 2, "maxBatch", 256));
    if (max_ == 0 || max_ > 65536) ThrowRange(env, "maxBatch must be in 1..65536");
    // The fd's file description may be shared with the guest; O_NONBLOCK
    // there is harmless (the guest never reads it) and required here: a
    // blocking uffd makes poll() return POLLERR and read() sleep.
    int fl = fcntl(uffd_, F_GETFL);
    if (fl < 0) ThrowErrno(env, errno, "fcntl(F_GETFL, uffd " + std::to_string(uffd_) + ")");
    if (!(fl & O_NONBLOCK) && fcntl(uffd_, F_SETFL, fl | O_NONBLOCK) != 0)
      ThrowErrno(env, errno, "fcntl(F_SETFL O_NONBLOCK, uffd " + std::to_string(uffd_) + ")");
    stopfd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopfd_ < 0) ThrowErrno(env, errno, "eventfd");
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "ppsim-fault-reader", 0, 1);
    running_ = true;
    thread_ = StartThread([this] { Loop(); }, &tid_);
  }

  ~FaultReader() override { Shutdown(); }

 private:
  // Where a read's faults may go besides JS, as JS attached them (under laneMu_).
  struct Routes {
    std::shared_ptr<ZeroHoles> holes;
    uint64_t base, ps;  // the holes' guest range
    std::shared_ptr<LaneCore> lane;
  };

  void Shutdown() {
    if (!running_) return;
    running_ = false;
    uint64_t one = 1;
    // eventfd write of 8 bytes cannot fail short; an error would only mean
    // the counter overflowed, which also wakes poll.
    (void)!write(stopfd_, &one, sizeof one);
    thread_.join();
    close(stopfd_);
    tsfn_.Release();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }
  // setLane(lane: FaultLane | null): from the next read on, missing faults go to that lane while it is armed.
  Napi::Value SetLane(const Napi::CallbackInfo& info) {
    std::shared_ptr<LaneCore> l;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) l = LaneCoreOf(info.Env(), info[0]);
    std::lock_guard<std::mutex> g(laneMu_);
    lane_ = std::move(l);
    return info.Env().Undefined();
  }

  // setHoles(table: ZeroHoleTable | null, base: bigint, pageSize): from the next read on, missing
  // faults on the table's zero holes are answered here. The table covers [base, base + its pages × pageSize).
  Napi::Value SetHoles(const Napi::CallbackInfo& info) {
    std::shared_ptr<ZeroHoles> t;
    uint64_t base = 0, ps = 0;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
      t = ZeroHolesOf(info.Env(), info[0]);
      base = ArgU64(info, 1, "base");
      ps = ArgU64(info, 2, "pageSize");
      if (ps == 0 || (ps & (ps - 1)) != 0 || base % ps != 0) ThrowRange(info.Env(), "pageSize must be a power of two and base aligned to it");
    }
    std::lock_guard<std::mutex> g(laneMu_);
    holes_ = std::move(t);
    holesBase_ = base;
    holesPs_ = ps;
    return info.Env().Undefined();
  }

  // zeroFaults(): missing faults answered here as zero holes, since the start.
  Napi::Value ZeroFaults(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(zeroFaults_.load())); }

  // tid(): the reader thread's kernel id while it runs, else 0 (JS sets its scheduling class by it).
  Napi::Value Tid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tid_.load()); }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (running_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (running_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  void Deliver(Batch* b) {
    // Ownership of b passes to the JS thread; if the call fails (TSFN
    // closing) we free it here.
    napi_status st = tsfn_.NonBlockingCall(b, [](Napi::Env env, Napi::Function cb, Batch* batch) {
      Napi::Array arr = Napi::Array::New(env, batch->events.size());
      for (size_t i = 0; i < batch->events.size(); i++) {
        const FaultEvent& e = batch->events[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("event", Napi::Number::New(env, e.event));
        o.Set("address", U64(env, e.address));
        o.Set("flags", Napi::Number::New(env, static_cast<double>(e.flags)));
        o.Set("tid", Napi::Number::New(env, e.tid));
        o.Set("readUs", Napi::Number::New(env, batch->read_us));
        arr.Set(static_cast<uint32_t>(i), o);
      }
      Napi::Value err = batch->err != 0 ? ErrnoError(env, batch->err, batch->what).Value() : env.Null();
      delete batch;
      cb.Call({err, arr});
    });
    if (st != napi_ok) delete b;
  }

  void Loop() {
    // Named for the per-thread CPU account (src/real/thread-cpu.ts); 15 bytes at most, best effort.
    (void)pthread_setname_np(pthread_self(), "ppsim-faults");
    std::vector<uffd_msg> msgs(max_);
    while (running_) {
      pollfd p[2] = {{uffd_, POLLIN, 0}, {stopfd_, POLLIN, 0}};
      int r = poll(p, 2, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        auto* b = new Batch;
        b->err = errno;
        b->what = "poll(uffd " + std::to_string(uffd_) + ")";
        Deliver(b);
        return;
      }
      if (p[1].revents) return;  // stop requested
      if (p[0].revents & (POLLERR | POLLNVAL | POLLHUP)) {
        auto* b = new Batch;
        b->err = (p[0].revents & POLLNVAL) ? EBADF : EPIPE;
        b->what = "poll(uffd " + std::to_string(uffd_) + ") reported POLLERR/POLLHUP/POLLNVAL";
        Deliver(b);
        return;
      }
      // uffd read() returns whole uffd_msg records (32 bytes each).
      ssize_t n = read(uffd_, msgs.data(), msgs.size() * sizeof(uffd_msg));
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;  // another reader or a spurious wakeup
        auto* b = new Batch;
        b->err = errno;
        b->what = "read(uffd " + std::to_string(uffd_) + ")";
        Deliver(b);
        return;
      }
      size_t count = static_cast<size_t>(n) / sizeof(uffd_msg);
      if (count == 0) continue;
      auto* b = new Batch;
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);  // cannot fail with a valid clock id and pointer
      b->read_us = static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
      b->events.reserve(count);
      for (size_t i = 0; i < count; i++) {
        const uffd_msg& m = msgs[i];
        FaultEvent e{m.event, 0, 0, 0};
        if (m.event == UFFD_EVENT_PAGEFAULT) {
          e.flags = m.arg.pagefault.flags;
          e.address = m.arg.pagefault.address;
          e.tid = m.arg.pagefault.feat.ptid;  // 0 unless UFFD_FEATURE_THREAD_ID was requested
        }
        b->events.push_back(e);
      }
      Routes to;
      {
        // One lock per read for both: what JS attached (setHoles, setLane) is read once.
        std::lock_guard<std::mutex> g(laneMu_);
        to = {holes_, holesBase_, holesPs_, lane_};
      }
      int e = AnswerHoles(b, to);
      if (e != 0) {
        b->events.clear();
        b->err = e;
        b->what = "UFFDIO_ZEROPAGE(a fault on a zero hole)";
        Deliver(b);
        return;
      }
      if (b->events.empty()) {
        delete b;
        continue;
      }
      if (ToLane(b, to.lane)) continue;
      Deliver(b);
    }
  }

  // Answers the batch's missing faults on zero holes and takes them out of it; marks the others as
  // sent on (zero_holes.h: the receiver installs a page it marks after that). 0 or the errno.
  int AnswerHoles(Batch* b, const Routes& to) {
    const std::shared_ptr<ZeroHoles>& t = to.holes;
    const uint64_t base = to.base, ps = to.ps;
    if (t == nullptr) return 0;
    size_t keep = 0;
    for (size_t i = 0; i < b->events.size(); i++) {
      const FaultEvent& e = b->events[i];
      bool missing = e.event == UFFD_EVENT_PAGEFAULT && (e.flags & UFFD_PAGEFAULT_FLAG_MINOR) == 0;
      uint64_t p = (e.address - base) / ps;  // unsigned: an address below base wraps past the table
      if (missing && e.address >= base && p < t->count() && t->Asked(static_cast<uint32_t>(p))) {
        // Counted before the answer wakes the faulting thread: whoever it resumes sees the count.
        zeroFaults_++;
        int err = AnswerZeroFault(uffd_, e.address, ps);
        if (err != 0) return err;
        continue;
      }
      b->events[keep++] = e;
    }
    b->events.resize(keep);
    return 0;
  }

  // Hands the batch's missing faults to the lane, if one is attached and takes them; true if
  // nothing is left for JS (b freed).
  bool ToLane(Batch* b, const std::shared_ptr<LaneCore>& lane) {
    if (lane == nullptr) return false;
    std::vector<LaneFault> faults;
    for (const FaultEvent& e : b->events)
      if (e.event == UFFD_EVENT_PAGEFAULT) faults.push_back({e.address, e.tid});
    if (faults.empty() || !LaneTakeFaults(lane, faults, b->read_us)) return false;
    std::vector<FaultEvent> rest;
    for (const FaultEvent& e : b->events)
      if (e.event != UFFD_EVENT_PAGEFAULT) rest.push_back(e);
    if (rest.empty()) {
      delete b;
      return true;
    }
    b->events.swap(rest);
    return false;
  }

  int uffd_ = -1;
  int stopfd_ = -1;
  std::mutex laneMu_;
  std::shared_ptr<LaneCore> lane_;
  std::shared_ptr<ZeroHoles> holes_;  // under laneMu_, with its range
  uint64_t holesBase_ = 0, holesPs_ = 0;
  std::atomic<uint64_t> zeroFaults_{0};
  size_t max_ = 256;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::atomic<pid_t> tid_{0};  // the thread's kernel id while it runs (StartThread)
  Napi::ThreadSafeFunction tsfn_;
};

void InitFaultReader(Napi::Env env, Napi::Object exports) { exports.Set("FaultReader", FaultReader::Init(env)); }

}  // namespace ppsim
