// The source's release punching off the event loop (issue 9, src/real/source-release.ts):
// a thread of its own, at the nice value JS chose, punches the runs of pages JS gives it out of
// the guest's memfd. Freeing shmem costs about a microsecond a page; done on the loop
// it was two thirds of the source loop's CPU in a 1 GiB post-copy
// (docs/real-benchmarks.md "Release punching off the loop"). No policy: JS decides
// which pages and when; the thread only calls fallocate in the order it was given.
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <string>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "util.h"

namespace ppsim {

namespace {

class Puncher : public Napi::ObjectWrap<Puncher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Puncher",
                       {InstanceMethod<&Puncher::Punch>("punch"), InstanceMethod<&Puncher::Stop>("stop"),
                        InstanceMethod<&Puncher::Stats>("stats")});
  }

  // new Puncher(memfd, pageSize, pageCount, nice, slicePages)
  explicit Puncher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Puncher>(info) {
    Napi::Env env = info.Env();
    int mem = ArgFd(info, 0, "memfd");
    pageSize_ = ArgU64(info, 1, "pageSize");
    pageCount_ = ArgU64(info, 2, "pageCount");
    uint64_t nice = ArgU64Or(info, 3, "nice", 0);
    slice_ = ArgU64Or(info, 4, "slicePages", 512);
    if (slice_ == 0 || slice_ > (1u << 20)) ThrowRange(env, "slicePages must be 1 … 2^20");
    if (pageSize_ == 0 || (pageSize_ & (pageSize_ - 1)) != 0 || pageSize_ > (1u << 30)) ThrowRange(env, "pageSize must be a power of two up to 1 GiB");
    if (pageCount_ > (1ull << 32)) ThrowRange(env, "pageCount must fit 32 bits");
    if (nice > 19) ThrowRange(env, "nice must be 0 … 19");
    nice_ = static_cast<int>(nice);
    // Our own description of the memfd: JS may close its fd (and the number name another
    // file) while a punch is still queued here; ours keeps naming the guest's memory.
    mem_ = fcntl(mem, F_DUPFD_CLOEXEC, 0);
    if (mem_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, memfd " + std::to_string(mem) + ")");
    running_ = true;
    thread_ = std::thread([this] { Loop(); });
  }

  ~Puncher() override { Shutdown(); }

 private:
  // punch(runs: Uint32Array of [firstPage, pageCount] pairs): queued in order; returns pages queued.
  Napi::Value Punch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      ThrowType(env, "runs must be a Uint32Array");
    Napi::Uint32Array a = info[0].As<Napi::Uint32Array>();
    if (a.ElementLength() % 2 != 0) ThrowRange(env, "runs must hold [firstPage, pageCount] pairs");
    uint64_t pages = 0;
    std::deque<std::pair<uint64_t, uint64_t>> add;
    for (size_t i = 0; i < a.ElementLength(); i += 2) {
      uint64_t first = a[i], n = a[i + 1];
      if (n == 0 || first + n > pageCount_) ThrowRange(env, "run " + std::to_string(first) + "+" + std::to_string(n) + " is outside the memfd's pages");
      add.emplace_back(first, n);
      pages += n;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!running_) ThrowErrno(env, EPIPE, "Puncher: punching after stop");
      for (auto& r : add) queue_.push_back(r);
    }
    cv_.notify_one();
    return Napi::Number::New(env, static_cast<double>(pages));
  }

  // stop(): drops what is still queued (the memfd is about to be closed, which frees it all) and joins.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // stats() -> { punched: pages, queued: pages, errno, what, busyNs, nice, niceErrno }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    std::lock_guard<std::mutex> g(mu_);
    uint64_t q = 0;
    for (auto& r : queue_) q += r.second;
    o.Set("punched", static_cast<double>(punched_.load()));
    o.Set("queued", static_cast<double>(q));
    o.Set("errno", err_);
    o.Set("what", what_);
    o.Set("busyNs", static_cast<double>(busyNs_.load()));
    o.Set("nice", nice_);
    o.Set("niceErrno", niceErr_);
    return o;
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!running_ && !thread_.joinable()) return;
      running_ = false;
      queue_.clear();
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (mem_ >= 0) close(mem_);
    mem_ = -1;
  }

  void Loop() {
    // Named so that the per-thread CPU samplers (bench/thread-cpu.ts) show it apart; a failure is harmless.
    (void)pthread_setname_np(pthread_self(), "ppsim-punch");
    niceErr_ = NiceThisThread(nice_);
    for (;;) {
      std::pair<uint64_t, uint64_t> r;
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [this] { return !running_ || !queue_.empty(); });
        if (!running_) return;
        auto& front = queue_.front();
        // Pieces of at most slice_ pages: a punch holds the memfd's inode lock, which the loop's
        // lseek(SEEK_DATA) waits for (source-port.ts learnData), and stop() waits for one piece.
        uint64_t n = front.second < slice_ ? front.second : slice_;
        r = {front.first, n};
        front.first += n;
        front.second -= n;
        if (front.second == 0) queue_.pop_front();
      }
      timespec t0{}, t1{};
      clock_gettime(CLOCK_MONOTONIC, &t0);
      // Offsets fit off_t: first + n ≤ pageCount ≤ 2^32 pages and pageSize ≤ 2^30 (checked at construction),
      // and KEEP_SIZE is mandatory with PUNCH_HOLE (the range becomes a hole: missing for userfaultfd again).
      off_t off = static_cast<off_t>(r.first * pageSize_), len = static_cast<off_t>(r.second * pageSize_);
      int rc = fallocate(mem_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      busyNs_ += static_cast<uint64_t>((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
      if (rc != 0) {
        std::lock_guard<std::mutex> g(mu_);
        err_ = errno;
        what_ = "fallocate(PUNCH_HOLE, memfd, offset " + Hex(static_cast<uint64_t>(off)) + ", len " + std::to_string(len) + ")";
        running_ = false;  // nothing more is punched; the memory is freed when the memfd closes
        queue_.clear();
        return;
      }
      punched_ += r.second;
    }
  }

  uint64_t pageSize_ = 0, pageCount_ = 0, slice_ = 512;
  int mem_ = -1, nice_ = 0, niceErr_ = 0, err_ = 0;
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, uint64_t>> queue_;
  bool running_ = false;
  std::atomic<uint64_t> punched_{0}, busyNs_{0};
  std::thread thread_;
};

}  // namespace

void InitPuncher(Napi::Env env, Napi::Object exports) { exports.Set("Puncher", Puncher::Init(env)); }

}  // namespace ppsim
