// Scheduling class of the calling thread or of one named thread (issue 9:
// the agents' event loops, or the fault lane's native threads, run in
// SCHED_RR so that a demand fault's way never waits for a CPU behind bulk
// threads, vCPUs or other processes; src/real/loop-priority.ts and
// lane-priority.ts hold the policy, this only makes the system calls).
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "util.h"

namespace ppsim {

namespace {

// schedRealtimeThisThread(priority): SCHED_RR | SCHED_RESET_ON_FORK at
// `priority` (1 … 99) for the calling thread alone (sched_setscheduler with
// pid 0 names the calling thread on Linux). Reset-on-fork: threads and
// processes it creates afterwards start in SCHED_OTHER at nice 0, so a
// guest's vCPUs or a bulk thread never inherit the real-time class.
Napi::Value SchedRealtimeThisThread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t prio = ArgU64(info, 0, "priority");
  if (prio < 1 || prio > 99) ThrowRange(env, "priority must be 1 … 99");
  sched_param p{};
  p.sched_priority = static_cast<int>(prio);
  if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &p) != 0)
    ThrowErrno(env, errno, "sched_setscheduler(this thread, SCHED_RR|SCHED_RESET_ON_FORK, priority " + std::to_string(prio) + ")");
  return env.Undefined();
}

// schedRealtimeThread(tid, priority): SCHED_RR | SCHED_RESET_ON_FORK at
// `priority` (1 … 99) for one thread of this process, named by its kernel id
// (PPSIM_LANE_RR: the fault lane's native threads report theirs, tid()).
// Assumes the id is a thread of this process that still runs: its owner
// hands it out only while the thread runs, and an id is reused only after
// the thread exits and the pid space wraps; the kernel checks the
// privilege as for the caller (EPERM without CAP_SYS_NICE or RLIMIT_RTPRIO),
// ESRCH if no such thread. 0 would name the calling thread: refused, since
// 0 is what an owner reports for a thread that does not run.
Napi::Value SchedRealtimeThread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t tid = ArgU64(info, 0, "tid");
  uint64_t prio = ArgU64(info, 1, "priority");
  if (tid == 0 || tid > 0x7fffffff) ThrowRange(env, "tid must be a running thread's id (1 … 2^31-1)");
  if (prio < 1 || prio > 99) ThrowRange(env, "priority must be 1 … 99");
  sched_param p{};
  p.sched_priority = static_cast<int>(prio);
  if (sched_setscheduler(static_cast<pid_t>(tid), SCHED_RR | SCHED_RESET_ON_FORK, &p) != 0)
    ThrowErrno(env, errno, "sched_setscheduler(thread " + std::to_string(tid) + ", SCHED_RR|SCHED_RESET_ON_FORK, priority " + std::to_string(prio) + ")");
  return env.Undefined();
}

// schedNormalThisThread(): the calling thread back to SCHED_OTHER (its nice
// value is kept; priority 0 is the only one SCHED_OTHER takes), keeping
// reset-on-fork. Ends a real-time window (PPSIM_SWITCHOVER_RR).
Napi::Value SchedNormalThisThread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sched_param p{};
  if (sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &p) != 0)
    ThrowErrno(env, errno, "sched_setscheduler(this thread, SCHED_OTHER|SCHED_RESET_ON_FORK, 0)");
  return env.Undefined();
}

// schedPolicy(tid): { policy, resetOnFork, priority } of a thread of any
// process (0: the calling thread); policy is the SCHED_* number.
Napi::Value SchedPolicy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t tid = ArgU64(info, 0, "tid");
  if (tid > 0x7fffffff) ThrowRange(env, "tid must fit a pid_t");
  int pol = sched_getscheduler(static_cast<pid_t>(tid));
  if (pol < 0) ThrowErrno(env, errno, "sched_getscheduler(" + std::to_string(tid) + ")");
  sched_param p{};
  if (sched_getparam(static_cast<pid_t>(tid), &p) != 0) ThrowErrno(env, errno, "sched_getparam(" + std::to_string(tid) + ")");
  Napi::Object o = Napi::Object::New(env);
  o.Set("policy", pol & ~SCHED_RESET_ON_FORK);
  o.Set("resetOnFork", (pol & SCHED_RESET_ON_FORK) != 0);
  o.Set("priority", p.sched_priority);
  return o;
}

}  // namespace

void InitSched(Napi::Env env, Napi::Object exports) {
  exports.Set("schedRealtimeThisThread", Napi::Function::New(env, SchedRealtimeThisThread));
  exports.Set("schedRealtimeThread", Napi::Function::New(env, SchedRealtimeThread));
  exports.Set("schedNormalThisThread", Napi::Function::New(env, SchedNormalThisThread));
  exports.Set("schedPolicy", Napi::Function::New(env, SchedPolicy));
}

}  // namespace ppsim
