// FaultLane: the destination's end of the fault lane (fault_lane.h says what
// the lane is). Two threads touch it: the fault reader's (TakeFaults: writes
// the requests) and the lane's own receiver (reads replies, installs them).
// Everything JS hears — faults and installs — goes through one queue, so a
// fault always reaches JS before the install that answers it.
//
// The lane owns dup()s of the socket, memfd and uffd; stop() wakes the
// receiver (eventfd), joins it, closes them and returns what JS has not taken.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "bulk_frames.h"
#include "bulk_stream.h"
#include "fault_lane.h"
#include "lane_core.h"
#include "frame_reader.h"
#include "page_install.h"
#include "page_states.h"
#include "util.h"

namespace ppsim {

namespace {

double NowUs() { return static_cast<double>(MonotonicNs()) / 1e3; }

// Pages above this size come one to a lane reply (64 KiB: the largest base page Linux has).
constexpr uint64_t kHugeReplyAbove = 64 << 10;

}  // namespace

class FaultLane : public Napi::ObjectWrap<FaultLane> {
 public:
  static Napi::FunctionReference* ctor;

  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "FaultLane",
                                   {InstanceMethod<&FaultLane::Start>("start"), InstanceMethod<&FaultLane::SetTarget>("setTarget"),
                                    InstanceMethod<&FaultLane::Arm>("arm"), InstanceMethod<&FaultLane::Stop>("stop"),
                                    InstanceMethod<&FaultLane::Stats>("stats"), InstanceMethod<&FaultLane::Tid>("tid")});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  // new FaultLane(socketFd, stallMs, callback(notices))
  explicit FaultLane(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FaultLane>(info) {
    Napi::Env env = info.Env();
    int sock = ArgFd(info, 0, "socketFd");
    uint64_t stall = ArgU64(info, 1, "stallMs");
    if (stall > 3600000) ThrowRange(env, "stallMs must be at most an hour");
    if (info.Length() < 3 || !info[2].IsFunction()) ThrowType(env, "callback must be a function");
    core_ = std::make_shared<LaneCore>();
    core_->stallMs = static_cast<int>(stall);
    core_->sock = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (core_->sock < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, socket " + std::to_string(sock) + ")");
    core_->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (core_->wake < 0) ThrowErrno(env, errno, "eventfd");
    core_->tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "ppsim-fault-lane", 0, 1);
  }

  ~FaultLane() override { Shutdown(); }

  std::shared_ptr<LaneCore> core() const { return core_; }

 private:
  // start(initial: Uint8Array): bytes Node read after the preamble, then the receiver thread.
  // The lane's first frame tells the source this end has attached (kTagLaneAttached): written here,
  // before the thread runs and before arm() can be called, so no request goes ahead of it. 8 bytes
  // on a socket nothing was written on yet: they fit at once, or the lane ends (JS hears why).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Bytes b = ArgBytes(info, 0, "initial");
    if (thread_.joinable() || stopped_) ThrowErrno(info.Env(), EALREADY, "FaultLane.start");
    in_.Init(core_->sock, core_->wake, core_->stallMs, b.data, b.len);
    int e;
    {
      std::lock_guard<std::mutex> w(core_->writeMu);
      e = WriteAll(core_->sock, kLaneAttachedFrame, sizeof kLaneAttachedFrame, 0);
    }
    if (e != 0) {
      core_->End(e, "send(fault lane: the attached frame)", false, core_);
      return info.Env().Undefined();
    }
    core_->running = true;
    thread_ = StartThread([this] { Loop(); }, &tid_);
    return info.Env().Undefined();
  }

  // setTarget(memfd, uffd, base: bigint, pageSize, pageCount, pageTable?): the guest's memory (once).
  Napi::Value SetTarget(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    {
      std::lock_guard<std::mutex> g(core_->targetMu);
      if (core_->target.mem >= 0) ThrowErrno(env, EALREADY, "FaultLane.setTarget: the target is set already");
    }
    GuestTarget t = TargetFromArgs(info, "FaultLane.setTarget");
    PageFlags asked = ZeroedFlags(t.pc);
    if (asked == nullptr) {
      CloseTarget(&t);
      ThrowErrno(env, ENOMEM, "FaultLane.setTarget: the table of " + std::to_string(t.pc) + " pages");
    }
    std::lock_guard<std::mutex> g(core_->targetMu);
    core_->asked = std::move(asked);
    core_->target = std::move(t);
    return env.Undefined();
  }

  // arm(): the guest may run — faults are requested here, replies installed (before: a reply is refused).
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    {
      std::lock_guard<std::mutex> g(core_->targetMu);
      if (core_->target.mem < 0) ThrowErrno(info.Env(), EINVAL, "FaultLane.arm: no target set");
    }
    if (!stopped_) core_->armed = true;
    return info.Env().Undefined();
  }

  // stop() -> the notices JS has not taken yet (faults among them must still reach the engine).
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    std::vector<LaneNotice> rest = Shutdown();
    return LaneCore::ToJs(info.Env(), rest);
  }

  // tid(): the receiver thread's kernel id while it runs, else 0 (JS sets its scheduling class by it).
  Napi::Value Tid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tid_.load()); }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("requests", static_cast<double>(core_->requests.load()));
    o.Set("replies", static_cast<double>(core_->replies.load()));
    o.Set("installs", static_cast<double>(core_->installs.load()));
    o.Set("lost", static_cast<double>(core_->lost.load()));
    o.Set("hugeDirect", static_cast<double>(core_->hugeDirect.load()));
    o.Set("hugeStaged", static_cast<double>(core_->hugeStaged.load()));
    return o;
  }

  std::vector<LaneNotice> Shutdown() {
    std::vector<LaneNotice> rest;
    if (stopped_) return rest;
    stopped_ = true;
    core_->armed = false;
    {
      std::lock_guard<std::mutex> g(core_->mu);
      core_->closed = true;
      rest.swap(core_->out);
    }
    core_->running = false;
    uint64_t one = 1;
    // An 8-byte eventfd write cannot be short; failing would mean the counter overflowed, which also wakes poll.
    (void)!write(core_->wake, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    // The socket goes now (the peer sees the lane close); the reader may still hold the core, armed no more.
    {
      std::lock_guard<std::mutex> w(core_->writeMu);
      std::lock_guard<std::mutex> g(core_->targetMu);
      core_->CloseFds();
    }
    installer_.Release();
    core_->tsfn.Release();
    return rest;
  }

  void Loop() {
    // Named for the per-thread CPU account (src/real/thread-cpu.ts); 15 bytes at most, best effort.
    (void)pthread_setname_np(pthread_self(), "ppsim-lane");
    std::shared_ptr<LaneCore> c = core_;
    // The target is set before arm(), and nothing is taken before arm(): read for each frame.
    auto pageSize = [&c] {
      std::lock_guard<std::mutex> g(c->targetMu);
      return c->target.ps;
    };
    for (;;) {
      Frame f;
      // Nothing is requested before the guest may run: whatever comes then is not a reply. A reply
      // carries its pages (a page each from ppsim; at most the codec's bound per frame). Huge pages:
      // one a reply, so that a peer cannot make this thread wait for and hold 256 of 2 MiB (512 MiB).
      auto take = [&](uint8_t tag, uint32_t len) {
        uint64_t ps = pageSize();
        uint64_t most = ps > kHugeReplyAbove ? 1 : kMaxPages;
        return c->armed && tag == kTagPages && len <= 4 + most * (5 + ps);
      };
      FrameReader::Got got = in_.Next(c->running, take, &f);
      if (got == FrameReader::Got::Ended) {
        int err;
        std::string what;
        bool protocol;
        if (LaneStreamEnd(in_.stream(), &err, &what, &protocol)) c->End(err, what, protocol, c);
        return;
      }
      if (got == FrameReader::Got::Refused) {
        if (!c->armed) return c->End(0, "fault lane: a frame before the guest may run (nothing was requested)", true, c);
        return c->End(0, "fault lane: a frame that is not a page reply (tag " + std::to_string(f.tag) + ", " + std::to_string(f.len) + " bytes)", true, c);
      }
      if (!Install(f.payload(), f.len)) return;
      in_.Consume(f);
    }
  }

  bool Install(const uint8_t* p, uint32_t len) {
    std::shared_ptr<LaneCore> c = core_;
    GuestTarget t;
    {
      std::lock_guard<std::mutex> g(c->targetMu);
      t = c->target;
    }
    LaneNotice n{LaneKind::Installed, {}, {}, {}, 0, 0, "", false};
    std::vector<const uint8_t*> data;
    if (!ParsePages(p, len, t.ps, t.pc, &n.pages, &n.flags, &data)) {
      c->End(0, "fault lane: a page reply that does not parse within the layout (" + std::to_string(len) + " bytes)", true, c);
      return false;
    }
    c->replies++;
    std::string what;
    // The guest runs: UFFDIO_COPY / ZEROPAGE (EEXIST: there already, its waiters woken), or claim + CONTINUE.
    int e = installer_.Install(n.pages, data, true, t.mem, t.uffd, t.base, t.ps, t.states.get(), &what);
    if (e != 0) {
      c->End(e, "fault lane: " + what, false, c);
      return false;
    }
    n.atUs = NowUs();
    c->installs += n.pages.size();
    c->lost = installer_.lost();
    c->hugeDirect = installer_.directHuge();
    c->hugeStaged = installer_.stagedHuge();
    c->Post(std::move(n), c);
    return true;
  }

  std::shared_ptr<LaneCore> core_;
  FrameReader in_;
  PageInstaller installer_;
  std::thread thread_;
  std::atomic<pid_t> tid_{0};  // the thread's kernel id while it runs (StartThread)
  bool stopped_ = false;
};

Napi::FunctionReference* FaultLane::ctor = nullptr;

std::shared_ptr<LaneCore> LaneCoreOf(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || FaultLane::ctor == nullptr || !v.As<Napi::Object>().InstanceOf(FaultLane::ctor->Value()))
    ThrowType(env, "lane must be a FaultLane");
  return FaultLane::Unwrap(v.As<Napi::Object>())->core();
}

void InitFaultLane(Napi::Env env, Napi::Object exports) { exports.Set("FaultLane", FaultLane::Init(env)); }

}  // namespace ppsim
