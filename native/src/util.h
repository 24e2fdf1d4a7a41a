// Shared helpers of the addon: errno -> JS Error conversion and argument
// parsing. Every failing system call becomes an Error whose message says what
// was attempted, e.g.
//   UFFDIO_COPY(dst 0x7f0000001000, len 4096) failed: EEXIST (File exists)
// with .code = "EEXIST" and .errno = 17, so JS can branch on .code.
#pragma once

#include <napi.h>

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <string>
#include <thread>
#include <utility>

namespace ppsim {

std::string ErrnoName(int err);
std::string Hex(uint64_t v);

// Builds the Error object (used directly by async workers).
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);

// Throws (C++ exception mode: Napi::Error is thrown and surfaces in JS).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what);
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// Argument readers: accept a Number (must be a non-negative safe integer) or
// a BigInt for 64-bit values such as addresses.
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ArgU64Or(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t dflt);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
// A view of a Uint8Array/Buffer argument (valid for the duration of the call).
struct Bytes {
  uint8_t* data;
  size_t len;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);
// Argument i as a Uint32Array (a TypeError naming it otherwise).
Napi::Uint32Array ArgU32Array(const Napi::CallbackInfo& info, size_t i, const char* name);

Napi::BigInt U64(Napi::Env env, uint64_t v);

// Called by a thread on itself: lowers its own scheduling priority to `nice`
// (Linux: setpriority on a thread id affects that thread only). Raising one's
// own nice value needs no privilege. Returns 0 or the errno.
int NiceThisThread(int nice);
// Sets the calling thread's nice value now (0 included); 0 or the errno.
int SetThreadNice(int nice);

// The kernel's id of the calling thread (gettid(2), through syscall: older glibc has no wrapper).
pid_t ThisThreadId();

// Starts `body` on a new thread and returns once that thread runs. *tid holds the thread's kernel id
// until body returns, then 0 (an exited thread's id is the kernel's to reuse, joined or not): JS may
// set the thread's scheduling class by id (sched.cc, schedRealtimeThread) — the policy stays in JS,
// the thread only says who it is. The promise moves into the thread: nothing on this stack is
// touched after get() returns. *tid must outlive the thread (the owner joins it before it goes).
template <class F>
std::thread StartThread(F body, std::atomic<pid_t>* tid) {
  std::promise<void> started;
  std::future<void> running = started.get_future();
  std::thread t([tid, p = std::move(started), body = std::move(body)]() mutable {
    tid->store(ThisThreadId());
    p.set_value();
    body();
    tid->store(0);
  });
  running.get();
  return t;
}

}  // namespace ppsim
