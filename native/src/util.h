// Shared helpers of the addon: errno -> JS Error conversion and argument
// parsing. Every failing system call becomes an Error whose message says what
// was attempted, e.g.
//   UFFDIO_COPY(dst 0x7f0000001000, len 4096) failed: EEXIST (File exists)
// with .code = "EEXIST" and .errno = 17, so JS can branch on .code.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

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

Napi::BigInt U64(Napi::Env env, uint64_t v);

// Called by a thread on itself: lowers its own scheduling priority to `nice`
// (Linux: setpriority on a thread id affects that thread only). Raising one's
// own nice value needs no privilege. Returns 0 or the errno.
int NiceThisThread(int nice);
// Sets the calling thread's nice value now (0 included); 0 or the errno.
int SetThreadNice(int nice);

}  // namespace ppsim
