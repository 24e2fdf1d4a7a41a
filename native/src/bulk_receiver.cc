// BulkReceiver: the destination's bulk connection read by a native thread.
// It splits the stream into frames (the engine's codec, docs/protocol.md),
// checks each header against the per-tag payload bounds JS gave it, and:
//   - a pages frame: checks every entry against the layout, installs the
//     pages into guest memory itself — pwrite into the memfd while the guest
//     may not run, UFFDIO_COPY / UFFDIO_ZEROPAGE once it may (EEXIST: the page
//     came meanwhile; its waiters are woken); huge pages (hugetlbfs) by
//     UFFDIO_COPY from the frame's bytes throughout (page_install.h) — then
//     tells JS which pages it installed, so the Destination engine still
//     learns every page;
//   - any other frame: hands its bytes to JS (which decodes them with the
//     engine's decoder) and waits until JS calls release(): such a frame
//     (hello, switchover, cancel) may change what installing means (the
//     target, the guest now running, stale pages dropped), so nothing after
//     it is installed before JS has acted on it.
// Given a PageTable with the target (install mode "continue", page_states.h),
// pages go into the memfd and are mapped with UFFDIO_CONTINUE, each page
// claimed first once the guest may run. Given a ZeroHoleTable instead (mode
// "copy", zero_holes.h), zero pages are left holes and only marked.
// Notices reach JS in arrival order, batched, through a ThreadSafeFunction
// (bulk_frames.*: the frame constants, the pages payload's parsing, the
// notices); splitting the stream into frames and the target's checks are
// frame_reader.*'s (shared with the fault lane's ends), reading the socket,
// with the stall bound, bulk_stream.*'s.
// Installing itself is page_install.cc's (PageInstaller).
// No policy: which pages to install and how is what the protocol says a
// bulk pages frame means; the engine's accounting stays in JS.
//
// The thread owns dup()s of the socket, memfd and uffd; stop() wakes it
// (eventfd), joins it and closes them.
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bulk_frames.h"
#include "bulk_stream.h"
#include "frame_reader.h"
#include "page_install.h"
#include "page_states.h"
#include "util.h"

namespace ppsim {

namespace {

// Installed pages JS has not taken yet: past this the thread waits (JS is behind).
constexpr size_t kMaxPendingPages = 1 << 16;

uint64_t NowNs() { return MonotonicNs(); }

}  // namespace

class BulkReceiver : public Napi::ObjectWrap<BulkReceiver> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BulkReceiver",
                       {InstanceMethod<&BulkReceiver::Start>("start"), InstanceMethod<&BulkReceiver::SetTarget>("setTarget"),
                        InstanceMethod<&BulkReceiver::SetLimits>("setLimits"), InstanceMethod<&BulkReceiver::SetRunning>("setRunning"),
                        InstanceMethod<&BulkReceiver::Release>("release"), InstanceMethod<&BulkReceiver::Stop>("stop"),
                        InstanceAccessor<&BulkReceiver::Received>("received"), InstanceMethod<&BulkReceiver::Stats>("stats"),
                        InstanceMethod<&BulkReceiver::DiscardPages>("discardPages"), InstanceMethod<&BulkReceiver::SetNice>("setNice")});
  }

  // new BulkReceiver(socketFd, limits: Uint32Array(12), stallMs, callback(notices))
  explicit BulkReceiver(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BulkReceiver>(info) {
    Napi::Env env = info.Env();
    int sock = ArgFd(info, 0, "socketFd");
    ReadLimits(info, 1);
    stallMs_ = static_cast<int>(ArgU64(info, 2, "stallMs"));
    if (info.Length() < 4 || !info[3].IsFunction()) ThrowType(env, "callback must be a function");
    // The thread's own nice value (JS chooses it: the urgent lane's threads must win the CPU over bulk installs).
    uint64_t nice = ArgU64Or(info, 4, "nice", 0);
    if (nice > 19) ThrowRange(env, "nice must be 0 … 19");
    nice_ = static_cast<int>(nice);
    wantNice_ = nice_.load();
    sock_ = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (sock_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, socket " + std::to_string(sock) + ")");
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) {
      int e = errno;
      close(sock_);
      ThrowErrno(env, e, "eventfd");
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "ppsim-bulk-receiver", 0, 1);
  }

  ~BulkReceiver() override { Shutdown(); }

 private:
  void ReadLimits(const Napi::CallbackInfo& info, size_t i) {
    if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        info[i].As<Napi::Uint32Array>().ElementLength() != kTags)
      ThrowType(info.Env(), "limits must be a Uint32Array of " + std::to_string(kTags) + " payload bounds (by tag)");
    Napi::Uint32Array a = info[i].As<Napi::Uint32Array>();
    std::lock_guard<std::mutex> g(box_->mu);
    for (size_t t = 0; t < kTags; t++) limits_[t] = a[t];
  }

  // start(initial: Uint8Array): the bytes already read after the preamble, then the thread.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Bytes b = ArgBytes(info, 0, "initial");
    if (started_) ThrowErrno(info.Env(), EALREADY, "BulkReceiver.start");
    in_.Init(sock_, wake_, stallMs_, b.data, b.len);
    started_ = true;
    running_ = true;
    thread_ = std::thread([this] { Loop(); });
    return info.Env().Undefined();
  }

  // setTarget(memfd, uffd, base: bigint, pageSize, pageCount, pageTable?): where pages go (the guest, once
  // it exists); with a PageTable, install mode "continue" over its claims.
  Napi::Value SetTarget(const Napi::CallbackInfo& info) {
    GuestTarget t = TargetFromArgs(info, "BulkReceiver.setTarget");
    std::lock_guard<std::mutex> g(box_->mu);
    if (target_.mem >= 0) {
      CloseTarget(&t);
      ThrowErrno(info.Env(), EALREADY, "BulkReceiver.setTarget: the target is set already");
    }
    target_ = std::move(t);
    return info.Env().Undefined();
  }

  // discardPages(pageSize, pageCount): pages frames are checked and dropped, not installed (measuring the link alone).
  Napi::Value DiscardPages(const Napi::CallbackInfo& info) {
    uint64_t ps = ArgU64(info, 0, "pageSize");
    uint64_t pc = ArgU64(info, 1, "pageCount");
    std::lock_guard<std::mutex> g(box_->mu);
    discard_ = true;
    target_.ps = ps;
    target_.pc = pc;
    return info.Env().Undefined();
  }

  Napi::Value SetLimits(const Napi::CallbackInfo& info) {
    ReadLimits(info, 0);
    return info.Env().Undefined();
  }

  // setRunning(): from now on the guest may run; installs are atomic (UFFDIO_*).
  Napi::Value SetRunning(const Napi::CallbackInfo& info) {
    guestRuns_ = true;
    return info.Env().Undefined();
  }

  // setNice(n): the thread's nice from its next frame on (it applies it itself: a thread's own
  // priority is set by the thread). JS calls it when the guest may run — the switchover taken, the
  // frames before it (pre-copy's pages, the switchover itself) read at the priority the thread started with.
  Napi::Value SetNice(const Napi::CallbackInfo& info) {
    uint64_t n = ArgU64(info, 0, "nice");
    if (n > 19) ThrowRange(info.Env(), "nice must be 0 … 19");
    wantNice_ = static_cast<int>(n);
    return info.Env().Undefined();
  }

  // release(): JS has acted on the last non-pages frame; installing may go on.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    {
      std::lock_guard<std::mutex> g(box_->mu);
      barrier_ = false;
    }
    box_->cv.notify_all();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // stats() -> where the thread's time went (ns): waiting for bytes, reading them, installing, waiting for JS.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("waitNs", static_cast<double>(in_.stream().waitNs.load()));
    o.Set("recvNs", static_cast<double>(in_.stream().recvNs.load()));
    o.Set("installNs", static_cast<double>(installNs_.load()));
    o.Set("jsNs", static_cast<double>(jsNs_.load()));
    o.Set("pages", static_cast<double>(pagesIn_.load()));
    o.Set("lost", static_cast<double>(lost_.load()));
    o.Set("received", static_cast<double>(received_.load()));
    o.Set("hugeDirect", static_cast<double>(hugeDirect_.load()));
    o.Set("hugeStaged", static_cast<double>(hugeStaged_.load()));
    o.Set("nice", nice_.load());
    o.Set("niceErrno", niceErrno_.load());
    return o;
  }

  Napi::Value Received(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(received_.load())); }

  void Shutdown() {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard<std::mutex> g(box_->mu);
      running_ = false;
    }
    box_->cv.notify_all();
    uint64_t one = 1;
    // An 8-byte eventfd write cannot be short; failing would mean the counter overflowed, which also wakes poll.
    (void)!write(wake_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    close(wake_);
    close(sock_);
    CloseTarget(&target_);
    installer_.Release();
    tsfn_.Release();
  }

  // ---- to JS

  // Pages notices of consecutive frames that JS has not taken yet go out as one (up to a frame's
  // worth of pages, kMaxPages): the same pages in the same order, with the count of frames they
  // came in (JS books the wire bytes from it), and one JS object and one engine message instead of
  // one per frame. Only the last notice grows, so arrival order holds: a frame or an end between
  // two pages notices keeps them apart.
  void Post(Notice&& n) {
    bool call = false;
    {
      std::lock_guard<std::mutex> g(box_->mu);
      if (n.kind == Kind::Pages) box_->pendingPages += n.pages.size();
      Notice* last = box_->out.empty() ? nullptr : &box_->out.back();
      if (n.kind == Kind::Pages && last != nullptr && last->kind == Kind::Pages && last->pages.size() + n.pages.size() <= kMaxPages) {
        last->pages.insert(last->pages.end(), n.pages.begin(), n.pages.end());
        last->zero.insert(last->zero.end(), n.zero.begin(), n.zero.end());
        last->frames += n.frames;
      } else {
        box_->out.push_back(std::move(n));
      }
      call = !box_->scheduled;
      box_->scheduled = true;
    }
    if (!call) return;
    std::shared_ptr<Box> box = box_;
    napi_status st = tsfn_.NonBlockingCall([box](Napi::Env env, Napi::Function cb) { DeliverNotices(*box, env, cb); });
    if (st != napi_ok) {
      std::lock_guard<std::mutex> g(box_->mu);
      box_->scheduled = false;
    }
  }


  void End(int err, const std::string& what, bool protocol = false) {
    Notice n{Kind::End, {}, {}, {}, err, what, protocol, 0, 0};
    Post(std::move(n));
  }

  // ---- the thread

  // The stream ended (FrameReader::Got::Ended): JS hears how, unless it was stopped.
  void Ended() {
    const StreamReader& in = in_.stream();
    if (in.end == StreamReader::End::Closed) End(0, "closed");
    if (in.end == StreamReader::End::Failed) End(in.err, in.what);
    if (in.end == StreamReader::End::Stalled) {
      Notice x{Kind::End, {}, {}, {}, 0, "stall", false, 0, 0};
      x.silentMs = in.silentMs;
      x.partial = in.partial;
      Post(std::move(x));
    }
  }

  void Loop() {
    // Named so that per-thread CPU time (/proc/PID/task/TID/comm, bench/thread-cpu.ts) tells it apart; 15 bytes at most.
    (void)pthread_setname_np(pthread_self(), "ppsim-bulk-rx");
    niceErrno_ = NiceThisThread(nice_.load());
    askedNice_ = nice_.load();
    // Each tag's payload bound, as JS gave it (setLimits).
    auto take = [this](uint8_t tag, uint32_t len) {
      if (tag == 0 || tag >= kTags) return false;
      std::lock_guard<std::mutex> g(box_->mu);
      return len <= limits_[tag];
    };
    for (;;) {
      ApplyNice();
      Frame f;
      FrameReader::Got got = in_.Next(running_, take, &f);
      if (got == FrameReader::Got::Ended) return Ended();
      // A bad header: JS's decoder says what is wrong with it (one wording for both paths); nothing more is read.
      if (got == FrameReader::Got::Refused) {
        Refer(f.bytes, kHeader, true);
        return;
      }
      int r = f.tag == kTagPages ? Pages(f.payload(), f.len) : 1;
      if (r < 0) return;
      if (r == 1 && !Refer(f.bytes, f.size())) return;
      in_.Consume(f);
      received_ += f.size();
    }
  }

  // Takes the nice value JS asked for (setNice), once.
  void ApplyNice() {
    int want = wantNice_.load();
    if (want == askedNice_) return;
    askedNice_ = want;  // not retried if refused: niceErrno says so in stats()
    niceErrno_ = SetThreadNice(want);
    if (niceErrno_.load() == 0) nice_ = want;
  }

  // Hands a frame to JS as it is and waits until JS has acted on it (release); false on stop.
  bool Refer(const uint8_t* f, size_t n, bool refused = false) {
    Notice x{Kind::Frame, {}, {}, std::vector<uint8_t>(f, f + n), 0, "", refused, 0, 0};
    {
      std::lock_guard<std::mutex> g(box_->mu);
      barrier_ = true;
    }
    Post(std::move(x));
    std::unique_lock<std::mutex> g(box_->mu);
    uint64_t t0 = NowNs();
    box_->cv.wait(g, [this] { return !running_ || !barrier_; });
    jsNs_ += NowNs() - t0;
    return running_;
  }

  // Parses and installs one pages payload: 0 installed, 1 not a frame to install here (JS decodes it
  // and the engine judges it: the same words as without the data plane), -1 installing failed (End posted).
  int Pages(const uint8_t* p, uint32_t len) {
    GuestTarget t;
    bool discard;
    {
      std::lock_guard<std::mutex> g(box_->mu);
      discard = discard_;
      t = target_;
    }
    if (t.mem < 0 && !discard) return 1;
    Notice n{Kind::Pages, {}, {}, {}, 0, "", false, 0, 0};
    std::vector<const uint8_t*> data;
    if (!ParsePages(p, len, t.ps, t.pc, &n.pages, &n.zero, &data)) return 1;
    const uint32_t count = static_cast<uint32_t>(n.pages.size());
    uint64_t t0 = NowNs();
    if (!discard) {
      std::string what;
      int e = installer_.Install(n.pages, data, guestRuns_.load(), t.mem, t.uffd, t.base, t.ps, t.states.get(), &what, t.holes.get());
      lost_ = installer_.lost();
      hugeDirect_ = installer_.directHuge();
      hugeStaged_ = installer_.stagedHuge();
      if (e != 0) return End(e, what), -1;
    }
    uint64_t t1 = NowNs();
    installNs_ += t1 - t0;
    pagesIn_ += count;
    {
      // JS far behind: wait for it rather than hold ever more.
      std::unique_lock<std::mutex> g(box_->mu);
      box_->cv.wait(g, [this] { return !running_ || box_->pendingPages < kMaxPendingPages; });
      if (!running_) return -1;
    }
    jsNs_ += NowNs() - t1;
    Post(std::move(n));
    return 0;
  }

  int sock_ = -1, wake_ = -1;
  int stallMs_ = 0;
  GuestTarget target_;  // under box_->mu; its states: install mode "continue"'s claims, shared with JS and the other receivers
  uint32_t limits_[kTags] = {};
  FrameReader in_;
  PageInstaller installer_;
  std::shared_ptr<Box> box_ = std::make_shared<Box>();
  bool barrier_ = false, started_ = false, stopped_ = false, discard_ = false;
  std::atomic<bool> running_{false}, guestRuns_{false};
  std::atomic<size_t> received_{0}, pagesIn_{0}, lost_{0}, hugeDirect_{0}, hugeStaged_{0};
  std::atomic<uint64_t> installNs_{0}, jsNs_{0};
  std::thread thread_;
  std::atomic<int> nice_{0}, wantNice_{0};
  int askedNice_ = 0;  // the thread's own: the last value it tried
  std::atomic<int> niceErrno_{0};
  Napi::ThreadSafeFunction tsfn_;
};

void InitBulkReceiver(Napi::Env env, Napi::Object exports) { exports.Set("BulkReceiver", BulkReceiver::Init(env)); }

}  // namespace ppsim
