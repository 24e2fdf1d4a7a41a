#include "util.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace ppsim {

std::string ErrnoName(int err) {
  // strerrorname_np is glibc >= 2.32; it returns NULL for unknown numbers.
  const char* n = strerrorname_np(err);
  return n != nullptr ? n : ("E" + std::to_string(err));
}

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  std::string msg = what + " failed: " + ErrnoName(err) + " (" + strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& what) { throw ErrnoError(env, err, what); }
void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length()) ThrowType(env, std::string("missing argument ") + name);
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, std::string(name) + " must fit in an unsigned 64-bit integer");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    // 2^53: beyond it a Number no longer holds every integer exactly.
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
      ThrowRange(env, std::string(name) + " must be a non-negative safe integer (or a bigint)");
    return static_cast<uint64_t>(d);
  }
  ThrowType(env, std::string(name) + " must be a number or a bigint");
}

uint64_t ArgU64Or(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t dflt) {
  if (i >= info.Length() || info[i].IsUndefined()) return dflt;
  return ArgU64(info, i, name);
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  uint64_t v = ArgU64(info, i, name);
  if (v > 0x7fffffff) ThrowRange(info.Env(), std::string(name) + " is not a file descriptor");
  return static_cast<int>(v);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Uint32Array ArgU32Array(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowType(info.Env(), std::string(name) + " must be a Uint32Array");
  return info[i].As<Napi::Uint32Array>();
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray())
    ThrowType(info.Env(), std::string(name) + " must be a Uint8Array or Buffer");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array)
    ThrowType(info.Env(), std::string(name) + " must be a Uint8Array or Buffer");
  Napi::Uint8Array u = ta.As<Napi::Uint8Array>();
  return Bytes{u.Data(), u.ByteLength()};
}

Napi::BigInt U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

int NiceThisThread(int nice) {
  if (nice == 0) return 0;  // at start: keep the process's own (the event loops')
  return SetThreadNice(nice);
}

pid_t ThisThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }  // gettid cannot fail

int SetThreadNice(int nice) {
  // PRIO_PROCESS with a thread id (gettid) names that one thread on Linux. Raising a nice value needs
  // no privilege; lowering one below where it was does (EACCES), which is why the data plane's
  // threads only ever go from the event loops' priority down to the bulk one, never back.
  pid_t tid = ThisThreadId();
  return setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) == 0 ? 0 : errno;
}

}  // namespace ppsim
