// Scheduling class of the calling thread (issue 9: the agents' event loops
// run in SCHED_RR so that a demand fault's way never waits for a CPU behind
// bulk threads, vCPUs or other processes; src/real/loop-priority.ts holds
// the policy, this only makes the system calls).
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
  exports.Set("schedNormalThisThread", Napi::Function::New(env, SchedNormalThisThread));
  exports.Set("schedPolicy", Napi::Function::New(env, SchedPolicy));
}

}  // namespace ppsim
