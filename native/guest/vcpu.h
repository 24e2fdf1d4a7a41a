// vCPU threads running the workload phases over guest RAM (SPEC.md).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.h"

namespace guest {

// Everything a vCPU needs to continue exactly where it stopped: its step
// counter (which also fixes the phase), its PRNG (xoshiro256**) and the
// sequential cursor (offset in the phase's region).
struct VcpuState {
  uint64_t step = 0;
  uint64_t rng[4] = {0, 0, 0, 0};
  uint64_t cursor = 0;
};

enum class RunState : uint8_t { Idle = 0, Running = 1, Paused = 2 };

// One vCPU's progress on a fine clock, like jitterd inside a guest: steps
// completed per time slot since the vCPUs started. Fixed memory: when the
// slots run out, pairs merge and the slot width doubles. Written only by its
// vCPU thread; read only while the vCPUs are parked (the park mutex orders both).
struct ProgressLog {
  static constexpr size_t kSlots = 1 << 15;
  static constexpr uint64_t kFirstSlotNs = 100'000;
  uint64_t slot_ns = kFirstSlotNs;
  size_t used = 0;
  std::vector<uint32_t> slots = std::vector<uint32_t>(kSlots, 0);
  void Add(uint64_t since_origin_ns, uint64_t steps);
};

class Machine {
 public:
  // max_steps == 0: run forever (phases repeat); else each task's steps.
  // `destination`: pages may be missing (the async-fault probe applies).
  // vcpu_nice: each vCPU thread lowers its own priority to it as it starts (0: leave it),
  // is raised back to nice 0 for a PAUSE and lowered again on RESUME (SetSlotsNice).
  Machine(const Config& cfg, uint8_t* base, uint64_t max_steps, bool destination, int vcpu_nice = 0, int vcpu_rr = 0);
  ~Machine();

  bool Start(std::string& err);                // RUN (from the current states): wakes the task threads the constructor made
  bool Pause(std::string& err);                // stop at a safe point between steps
  bool Resume(std::string& err);               // continue after PAUSE
  std::vector<uint8_t> SaveState() const;      // only while not running
  bool LoadState(const uint8_t* p, size_t n, std::string& err);
  void SetThrottle(double r) { throttle_.store(r); }
  RunState State() const { return state_; }
  // vCPU v: the steps of all its tasks; finished when every task is.
  uint64_t StepsDone(size_t v) const {
    uint64_t n = 0;
    for (size_t k = 0; k < tasks_; k++) n += done_[v + cfg_.vcpus * k].load(std::memory_order_relaxed);
    return n;
  }
  bool Finished(size_t v) const {
    if (max_steps_ == 0) return false;
    for (size_t k = 0; k < tasks_; k++)
      if (done_[v + cfg_.vcpus * k].load(std::memory_order_relaxed) < max_steps_) return false;
    return true;
  }
  // The vCPU's kernel thread id (what a userfaultfd fault message names); 0 before it first ran.
  uint32_t Tid(size_t v) const { return tids_[v].load(std::memory_order_relaxed); }
  // Only while every vCPU is parked (paused or finished): false otherwise.
  // u64 origin (CLOCK_MONOTONIC ns when the vCPUs started; 0 before), u64 now
  // (same clock), u32 vcpus, then per vCPU: u64 slot_ns, u32 n, n x u32 steps.
  // Then the switchover's stamps (same clock, 0 = never): u32 magic "PPST", u64 when the control
  // thread read the last PAUSE, u64 the last RESUME, then per vCPU: u64 first step (the earliest of
  // its tasks' first steps since RUN/RESUME started them), u64 last park (the latest of its tasks'
  // parks for a PAUSE, i.e. just after its last step).
  bool ProgressLogBytes(std::vector<uint8_t>& out);
  // The control thread read a PAUSE / RESUME (the switchover's trace at the guest's end).
  void NotePauseRead() { pause_read_ns_ = MonotonicNs(); }
  void NoteResumeRead() { resume_read_ns_ = MonotonicNs(); }
  static uint64_t MonotonicNs();
  void Shutdown();  // stop and join every thread

 private:
  // One thread per task slot s = v + vcpus * k (task k of vCPU v).
  void Run(size_t s);
  void Credit(size_t v, uint64_t& pending);
  // Chooses slot s's next access (after its compute); the caller performs it.
  uint64_t Step(size_t s, VcpuState& st, bool& write);
  // The vCPU's slot, taken in ticket order so that its tasks run round-robin.
  void Acquire(size_t v);
  void Release(size_t v);
  bool Resident(uint64_t p) const;
  void Compute(uint64_t ns);
  uint64_t ChoosePage(size_t v, VcpuState& s, const Phase& ph, uint64_t sip);
  uint64_t TracePage(size_t v, const Phase& ph, uint64_t sip, bool& write, double& compute_ns) const;
  void Access(size_t v, VcpuState& s, uint64_t p, bool write);  // one load or store, then the step is done
  void SetSlotsNice(int nice);  // every task thread that has started; best effort (vcpu_sched.cc)
  // The calling task thread: SCHED_RR (vcpu_rr_) until its first step, true if it took; then back to
  // the normal class at vcpu_nice_, and its tid published for SetSlotsNice (vcpu_sched.cc).
  bool EnterWaitClass();
  void LeaveWaitClass(size_t slot, pid_t tid, bool rr_on);

  const Config& cfg_;
  int vcpu_nice_;
  int vcpu_rr_;  // > 0: SCHED_RR at this priority until the thread's first step
  uint8_t* base_;
  uint64_t max_steps_;
  size_t tasks_;
  size_t slots_;
  bool probe_;  // async faults at the destination: look before touching a page not yet seen present
  struct VcpuSlot {
    std::mutex m;
    std::condition_variable cv;
    uint64_t next = 0, serving = 0;
  };
  std::unique_ptr<VcpuSlot[]> vslots_;
  std::unique_ptr<std::atomic<uint8_t>[]> known_;  // probe_: pages seen present
  std::vector<VcpuState> st_;
  std::vector<ProgressLog> logs_;
  uint64_t log_origin_ns_ = 0;
  // Steps between two clock reads: about 10 µs of the fastest phase's work,
  // so the clock costs little and a slot (100 µs) still sees every stall.
  uint64_t clock_stride_ = 1;
  std::unique_ptr<std::atomic<uint64_t>[]> done_;
  std::unique_ptr<std::atomic<uint32_t>[]> tids_;
  std::unique_ptr<std::atomic<uint32_t>[]> slot_tids_;  // every task thread's tid (0 before it ran)
  // Per task slot, CLOCK_MONOTONIC ns (0: not yet): its first step since it started, its last park for a PAUSE.
  std::unique_ptr<std::atomic<uint64_t>[]> first_step_ns_;
  std::unique_ptr<std::atomic<uint64_t>[]> park_ns_;
  uint64_t pause_read_ns_ = 0, resume_read_ns_ = 0;  // control thread only
  std::vector<std::thread> threads_;
  RunState state_ = RunState::Idle;
  bool started_ = false;  // under mu_: RUN or RESUME let the (already created) task threads go

  std::mutex mu_;
  std::condition_variable cv_vcpu_, cv_ctrl_;
  std::atomic<bool> pause_req_{false};
  std::atomic<bool> quit_{false};
  size_t parked_ = 0;  // task threads paused or finished (under mu_)
  std::atomic<double> throttle_{0};
  double iters_per_ns_ = 1;
  std::atomic<uint64_t> sink_{0};
};

}  // namespace guest
