#include "vcpu.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "memory.h"

namespace guest {

namespace {

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

constexpr uint32_t kStampsMagic = 0x54535050;  // "PPST"

// The busy loop's body: a dependent multiply chain the compiler cannot drop.
inline uint64_t Spin(uint64_t iters, uint64_t x) {
  for (uint64_t i = 0; i < iters; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    asm volatile("" : "+r"(x));
  }
  return x;
}

constexpr uint32_t kStateMagic = 0x53565050;  // "PPVS"
constexpr uint32_t kStateVersion = 1;

}  // namespace

void ProgressLog::Add(uint64_t since_origin_ns, uint64_t steps) {
  uint64_t i = since_origin_ns / slot_ns;
  while (i >= kSlots) {
    for (size_t k = 0; k < kSlots / 2; k++) {
      uint64_t sum = static_cast<uint64_t>(slots[2 * k]) + slots[2 * k + 1];
      slots[k] = static_cast<uint32_t>(std::min<uint64_t>(sum, UINT32_MAX));
    }
    std::fill(slots.begin() + kSlots / 2, slots.end(), 0);
    used = (used + 1) / 2;
    slot_ns *= 2;
    i = since_origin_ns / slot_ns;
  }
  slots[i] = static_cast<uint32_t>(std::min<uint64_t>(static_cast<uint64_t>(slots[i]) + steps, UINT32_MAX));
  used = std::max<size_t>(used, i + 1);
}

Machine::Machine(const Config& cfg, uint8_t* base, uint64_t max_steps, bool destination, int vcpu_nice, int vcpu_rr)
    : cfg_(cfg),
      vcpu_nice_(vcpu_nice),
      vcpu_rr_(vcpu_rr),
      base_(base),
      max_steps_(max_steps),
      tasks_(cfg.tasks),
      slots_(cfg.vcpus * cfg.tasks),
      probe_(destination && cfg.async_faults && cfg.tasks > 1),
      vslots_(new VcpuSlot[cfg.vcpus]),
      st_(cfg.vcpus * cfg.tasks),
      logs_(cfg.vcpus),
      done_(new std::atomic<uint64_t>[cfg.vcpus * cfg.tasks]),
      tids_(new std::atomic<uint32_t>[cfg.vcpus]),
      slot_tids_(new std::atomic<uint32_t>[cfg.vcpus * cfg.tasks]),
      first_step_ns_(new std::atomic<uint64_t>[cfg.vcpus * cfg.tasks]),
      park_ns_(new std::atomic<uint64_t>[cfg.vcpus * cfg.tasks]) {
  if (probe_) {
    known_.reset(new std::atomic<uint8_t>[cfg.pages]);
    for (uint64_t p = 0; p < cfg.pages; p++) known_[p].store(0, std::memory_order_relaxed);
  }
  uint64_t fastest = UINT64_MAX;
  for (size_t k = 0; k < tasks_; k++)
    for (const Phase& ph : PhasesOf(cfg, k)) fastest = std::min<uint64_t>(fastest, ph.compute_ns);
  // ~100 ns per step for the access and the bookkeeping on top of compute.
  clock_stride_ = std::clamp<uint64_t>(10'000 / (fastest + 100), 1, 64);
  for (size_t v = 0; v < cfg.vcpus; v++) tids_[v].store(0);
  for (size_t t = 0; t < slots_; t++) {
    // Seed each slot's stream from (seed, slot) through splitmix64 (slot = vCPU with one task).
    uint64_t sm = cfg.seed ^ Mix64(0x7070'7369'6d00'0000ull + t);
    for (auto& w : st_[t].rng) w = Mix64(sm += 0x9E3779B97F4A7C15ull);
    done_[t].store(0);
    slot_tids_[t].store(0);
    first_step_ns_[t].store(0);
    park_ns_[t].store(0);
  }
  // Calibrate the compute loop once: iterations per nanosecond over ~20 ms.
  uint64_t iters = 1 << 16, t0 = NowNs(), x = 1;
  uint64_t total = 0;
  while (NowNs() - t0 < 20'000'000) {
    x = Spin(iters, x);
    total += iters;
  }
  sink_ += x;
  iters_per_ns_ = static_cast<double>(total) / static_cast<double>(NowNs() - t0);
  // The task threads exist from here on and sleep until RUN or RESUME: created by
  // RESUME, a destination's vCPU waited for the clone and then, as a new task, for a
  // core behind the running ones; a sleeper that is woken gets one sooner (issue 9).
  for (size_t t = 0; t < slots_; t++) threads_.emplace_back([this, t] { Run(t); });
}

Machine::~Machine() { Shutdown(); }

uint64_t Machine::MonotonicNs() { return NowNs(); }

void Machine::Shutdown() {
  quit_ = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    pause_req_ = false;
  }
  cv_vcpu_.notify_all();
  for (size_t v = 0; v < cfg_.vcpus; v++) {
    std::lock_guard<std::mutex> l(vslots_[v].m);  // a task waiting for its vCPU sees quit_
    vslots_[v].cv.notify_all();
  }
  // A vCPU blocked in a userfaultfd fault cannot be joined; the process
  // exits anyway (QUIT calls _exit after replying), so detach those.
  for (auto& t : threads_)
    if (t.joinable()) t.detach();
  threads_.clear();
}

bool Machine::Start(std::string& err) {
  if (state_ != RunState::Idle) return err = "RUN: vCPUs already started", false;
  {
    std::lock_guard<std::mutex> l(mu_);
    state_ = RunState::Running;
    log_origin_ns_ = NowNs();
    started_ = true;
  }
  cv_vcpu_.notify_all();
  return true;
}

bool Machine::Pause(std::string& err) {
  if (state_ == RunState::Paused) return true;  // idempotent
  if (state_ == RunState::Idle) return true;    // nothing runs: already at a safe point
  if (vcpu_nice_ > 0) SetSlotsNice(0);
  std::unique_lock<std::mutex> l(mu_);
  pause_req_ = true;
  // Waits for every vCPU to park. One blocked in a missing-page fault parks
  // only once the agent installs that page.
  cv_ctrl_.wait(l, [&] { return parked_ == slots_; });
  state_ = RunState::Paused;
  (void)err;
  return true;
}

bool Machine::Resume(std::string& err) {
  if (state_ == RunState::Idle) return Start(err);  // RESUME of a fresh (destination) guest starts it
  if (state_ == RunState::Running) return true;
  if (vcpu_nice_ > 0) SetSlotsNice(vcpu_nice_);  // before any vCPU wakes
  {
    std::lock_guard<std::mutex> l(mu_);
    pause_req_ = false;
    state_ = RunState::Running;
  }
  cv_vcpu_.notify_all();
  return true;
}

std::vector<uint8_t> Machine::SaveState() const {
  // Layout (little-endian, x86_64): u32 magic, u32 version, u32 vcpus,
  // u32 reserved, u64 seed, then per vCPU: u64 step, u64 rng[4], u64 cursor.
  std::vector<uint8_t> out(24 + st_.size() * 48);
  uint32_t hdr[4] = {kStateMagic, kStateVersion, static_cast<uint32_t>(slots_), 0};
  memcpy(out.data(), hdr, 16);
  memcpy(out.data() + 16, &cfg_.seed, 8);
  for (size_t v = 0; v < st_.size(); v++) memcpy(out.data() + 24 + v * 48, &st_[v], 48);
  return out;
}

bool Machine::LoadState(const uint8_t* p, size_t n, std::string& err) {
  static_assert(sizeof(VcpuState) == 48, "VcpuState is serialised as 6 x u64");
  if (state_ != RunState::Idle) return err = "RESUME with a state is only allowed before the vCPUs start", false;
  uint32_t hdr[4];
  uint64_t seed;
  if (n < 24) return err = "vCPU state too short", false;
  memcpy(hdr, p, 16);
  memcpy(&seed, p + 16, 8);
  if (hdr[0] != kStateMagic || hdr[1] != kStateVersion) return err = "not a ppsim vCPU state (bad magic/version)", false;
  if (hdr[2] != slots_ || n != 24 + 48 * slots_)
    return err = "vCPU state is for " + std::to_string(hdr[2]) + " task slots, this guest has " + std::to_string(slots_), false;
  if (seed != cfg_.seed) return err = "vCPU state was saved with another seed", false;
  for (size_t v = 0; v < st_.size(); v++) {
    memcpy(&st_[v], p + 24 + v * 48, 48);
    done_[v].store(st_[v].step);
  }
  return true;
}

void Machine::Compute(uint64_t ns) {
  if (ns == 0) return;
  sink_.fetch_add(Spin(static_cast<uint64_t>(static_cast<double>(ns) * iters_per_ns_), ns), std::memory_order_relaxed);
}


void Machine::Acquire(size_t v) {
  VcpuSlot& vs = vslots_[v];
  std::unique_lock<std::mutex> l(vs.m);
  uint64_t ticket = vs.next++;
  vs.cv.wait(l, [&] { return vs.serving == ticket || quit_.load(); });
}

void Machine::Release(size_t v) {
  VcpuSlot& vs = vslots_[v];
  {
    std::lock_guard<std::mutex> l(vs.m);
    vs.serving++;
  }
  vs.cv.notify_all();
}

// Is page p in guest RAM's page cache (installed)? mincore on our own
// MAP_SHARED mapping of the memfd: base_ is page aligned, p < pages.
bool Machine::Resident(uint64_t p) const {
  unsigned char vec = 0;
  if (mincore(base_ + p * cfg_.page_size, cfg_.page_size, &vec) != 0) return true;  // cannot tell: touch it as usual
  return (vec & 1) != 0;
}

void Machine::Access(size_t v, VcpuState& s, uint64_t p, bool write) {
  const uint64_t words = cfg_.page_size / 8;
  uint64_t off = Mix64(s.step * 2 + 1) % words;  // step-derived word in the page
  // Aligned u64 inside guest RAM (p < pages, off < words).
  volatile uint64_t* w = reinterpret_cast<volatile uint64_t*>(base_ + p * cfg_.page_size) + off;
  if (write) *w = Mix64(cfg_.seed ^ Mix64((static_cast<uint64_t>(v) << 56) ^ Mix64(s.step)));
  else sink_.fetch_add(*w, std::memory_order_relaxed);
  s.step++;
}

bool Machine::ProgressLogBytes(std::vector<uint8_t>& out) {
  // A vCPU credits its last steps before it counts itself parked, under mu_:
  // holding mu_ with every vCPU parked, no thread writes a log.
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == RunState::Running && parked_ != slots_) return false;
  // Little-endian like every control reply (x86_64 host order).
  auto put = [](std::vector<uint8_t>& o, const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    o.insert(o.end(), b, b + n);
  };
  out.clear();
  uint64_t now = NowNs();
  uint32_t n = static_cast<uint32_t>(cfg_.vcpus);
  put(out, &log_origin_ns_, 8);
  put(out, &now, 8);
  put(out, &n, 4);
  for (const ProgressLog& l : logs_) {
    uint32_t used = static_cast<uint32_t>(l.used);
    put(out, &l.slot_ns, 8);
    put(out, &used, 4);
    put(out, l.slots.data(), l.used * sizeof(uint32_t));
  }
  // The switchover's stamps: per vCPU the earliest first step and the latest park of its tasks.
  put(out, &kStampsMagic, 4);
  put(out, &pause_read_ns_, 8);
  put(out, &resume_read_ns_, 8);
  for (size_t v = 0; v < cfg_.vcpus; v++) {
    uint64_t first = 0, park = 0;
    for (size_t k = 0; k < tasks_; k++) {
      uint64_t f = first_step_ns_[v + cfg_.vcpus * k].load(std::memory_order_relaxed);
      uint64_t p = park_ns_[v + cfg_.vcpus * k].load(std::memory_order_relaxed);
      if (f != 0 && (first == 0 || f < first)) first = f;
      park = std::max(park, p);
    }
    put(out, &first, 8);
    put(out, &park, 8);
  }
  return true;
}

void Machine::Credit(size_t v, uint64_t& pending) {
  if (pending == 0) return;
  uint64_t t = NowNs();
  logs_[v].Add(t > log_origin_ns_ ? t - log_origin_ns_ : 0, pending);
  pending = 0;
}

void Machine::Run(size_t slot) {
  const size_t v = slot % cfg_.vcpus;
  // gettid() is a pid_t (int), positive for a live thread: it fits a u32. A vCPU's tid is its first task's.
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (slot == v) tids_[v].store(static_cast<uint32_t>(tid), std::memory_order_relaxed);
  // Named for the agents' per-thread CPU account (src/real/thread-cpu.ts): "ppsim-vcpu" and up to 5
  // digits of the vCPU number fit the kernel's 15 bytes; best effort (a failure leaves the process's name).
  char name[16];
  snprintf(name, sizeof name, "ppsim-vcpu%u", static_cast<unsigned>(v % 100000));
  (void)pthread_setname_np(pthread_self(), name);
  // Its class for the wait until its first step, and back after it: vcpu_sched.cc (why there).
  const bool rr_on = EnterWaitClass();
  bool lowered = vcpu_nice_ <= 0 && !rr_on;
  if (lowered) slot_tids_[slot].store(static_cast<uint32_t>(tid), std::memory_order_release);
  {
    // Until RUN / RESUME (Start): its state may still be loaded, and the log's origin is not set.
    std::unique_lock<std::mutex> l(mu_);
    cv_vcpu_.wait(l, [&] { return started_ || quit_.load(); });
  }
  if (quit_.load()) return;
  VcpuState& s = st_[slot];
  double debt_ns = 0;  // throttle sleep owed
  uint64_t pending = 0;  // steps done since the last clock read
  uint64_t stride_left = clock_stride_;
  // With tasks, a task runs only while it holds its vCPU's slot; its progress goes to the vCPU's log then.
  const bool shared = tasks_ > 1;
  bool holding = false;
  uint64_t slice_left = cfg_.slice_steps;
  auto release = [&] {
    Credit(v, pending);
    if (holding) Release(v);
    holding = false;
  };
  for (;;) {
    if (quit_.load(std::memory_order_relaxed)) return;
    if (shared && !holding) {
      Acquire(v);
      holding = true;
      if (quit_.load()) return;
    }
    bool finished = max_steps_ != 0 && s.step >= max_steps_;
    if (finished || pause_req_.load(std::memory_order_acquire)) {
      release();
      // A park for a PAUSE ends the vCPU's run on this host (the guest-side downtime starts at the last one).
      if (!finished) park_ns_[slot].store(NowNs(), std::memory_order_relaxed);
      std::unique_lock<std::mutex> l(mu_);
      parked_++;
      cv_ctrl_.notify_all();
      // A finished task stays parked for good (it counts as paused).
      cv_vcpu_.wait(l, [&] { return quit_.load() || (!finished && !pause_req_.load()); });
      parked_--;
      if (quit_) return;
      continue;
    }
    // The first step on this host: where the destination's downtime ends (one clock read per thread).
    if (first_step_ns_[slot].load(std::memory_order_relaxed) == 0) first_step_ns_[slot].store(NowNs(), std::memory_order_relaxed);
    double r = throttle_.load(std::memory_order_relaxed);
    uint64_t t0 = r > 0 ? NowNs() : 0;
    bool write = false;
    uint64_t p = Step(slot, s, write);
    if (probe_ && known_[p].load(std::memory_order_relaxed) == 0) {
      if (!Resident(p)) {
        // The page is missing: give the vCPU to another task while this one
        // waits in the fault (a read of the page), as a guest with async
        // page faults parks the task; then queue for the vCPU again.
        release();
        (void)*reinterpret_cast<volatile uint8_t*>(base_ + p * cfg_.page_size);
        Acquire(v);
        holding = true;
      }
      known_[p].store(1, std::memory_order_relaxed);
    }
    Access(slot, s, p, write);
    if (!lowered) {
      LeaveWaitClass(slot, tid, rr_on);
      lowered = true;
    }
    done_[slot].store(s.step, std::memory_order_release);
    pending++;
    if (--stride_left == 0) {
      stride_left = clock_stride_;
      Credit(v, pending);
    }
    if (r > 0) {
      // Sleep so that running time is (1 - r) of wall time.
      debt_ns += static_cast<double>(NowNs() - t0) * r / (1 - r);
      if (debt_ns >= 50'000) {
        uint64_t t1 = NowNs();
        timespec ts{static_cast<time_t>(debt_ns / 1e9), static_cast<long>(static_cast<uint64_t>(debt_ns) % 1000000000ull)};
        nanosleep(&ts, nullptr);
        debt_ns -= static_cast<double>(NowNs() - t1);
      }
    }
    if (shared && --slice_left == 0) {
      slice_left = cfg_.slice_steps;
      release();  // to the back of the vCPU's queue
    }
  }
}

}  // namespace guest
