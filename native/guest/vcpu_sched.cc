// The vCPU threads' scheduling steps (nice, SCHED_RR), apart from their work
// (vcpu.cc): what class a task thread is in while it waits for RUN / RESUME,
// after its first step, and during a PAUSE. All best effort: a refused call
// leaves the thread as it was and the guest runs on.
#include <sched.h>
#include <sys/resource.h>

#include "vcpu.h"

namespace guest {

// Why a PAUSE raises the vCPUs: at nice 19 on a loaded host a vCPU waits
// milliseconds for the slice in which it sees pause_req_ and parks, and the
// source's downtime waits for the last one. At nice 0 (the control thread's
// and the agents' own) it gets a core as soon as any other nice-0 thread
// would. Safe: a raised vCPU runs at most to the end of its current step,
// then sleeps in the park; RESUME lowers it before waking it, so it never
// takes a step at nice 0 beside the agents. Cost: one setpriority per task
// thread each way (~µs). Raising needs CAP_SYS_NICE (or RLIMIT_NICE): without
// it the call fails with EPERM and the pause is as it was.
void Machine::SetSlotsNice(int nice) {
  for (size_t t = 0; t < slots_; t++) {
    uint32_t tid = slot_tids_[t].load(std::memory_order_acquire);
    // PRIO_PROCESS with a thread id sets that one thread's nice on Linux.
    if (tid != 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice);
  }
}

// A task thread's own renice comes after its first step (LeaveWaitClass), not
// before: lowered to nice 19 first, a new vCPU waited milliseconds for a core
// on a loaded host before it ran at all — the end of the downtime. One step at
// nice 0 is microseconds (or it sleeps in its first fault), then it gives way
// to the agents as before (docs/real.md).
// --vcpu-rr: until that first step in SCHED_RR too, so that the wake-up on
// RESUME does not wait for a core behind nice-0 threads of other sessions
// (autogroups share the CPU before nice counts: loop-priority.ts). It only
// sleeps until then; one step is microseconds or a sleep in its first fault.
// sched_setscheduler(0) names the calling thread on Linux; without
// CAP_SYS_NICE it stays in SCHED_OTHER (false: nothing to undo).
bool Machine::EnterWaitClass() {
  if (vcpu_rr_ <= 0) return false;
  sched_param sp{};
  sp.sched_priority = vcpu_rr_;
  return sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp) == 0;
}

void Machine::LeaveWaitClass(size_t slot, pid_t tid, bool rr_on) {
  if (rr_on) {
    // Back to the normal class (priority 0 is the only one SCHED_OTHER takes); its nice is kept.
    sched_param sp{};
    (void)sched_setscheduler(0, SCHED_OTHER, &sp);
  }
  // PRIO_PROCESS with a thread id sets that thread's nice on Linux; best effort.
  if (vcpu_nice_ > 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), vcpu_nice_);
  // After its own renice: a PAUSE that raises it from here on is not undone by it. Before
  // its first step counts: whoever sees a step done finds the thread lowered and known.
  // gettid() is positive for a live thread: it fits a u32.
  slot_tids_[slot].store(static_cast<uint32_t>(tid), std::memory_order_release);
}

}  // namespace guest
