// memfd + shared mappings. A Mapping is an opaque handle: JS never gets a
// Buffer aliasing the mapping (it could outlive munmap and turn into a
// use-after-unmap crash); reads and writes copy to/from Node buffers.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>

namespace ppsim {

class Mapping : public Napi::ObjectWrap<Mapping> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference* ctor;
  explicit Mapping(const Napi::CallbackInfo& info);
  ~Mapping() override;

  // For other modules (UFFDIO_COPY from a mapping): checks bounds and
  // liveness, throws otherwise.
  uint8_t* Checked(Napi::Env env, uint64_t offset, uint64_t len, const char* what);
  // Async touches pin the mapping: munmap refuses while one is in flight.
  std::atomic<int> inflight{0};
  // Hands the mapping over (its address; *len its length): the caller unmaps it from now on, this
  // object is unmapped. Throws if unmapped already or pinned.
  uint8_t* Release(Napi::Env env, uint64_t* len);

 private:
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Mapped(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadInto(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value ReadU64(const Napi::CallbackInfo& info);
  Napi::Value WriteU64(const Napi::CallbackInfo& info);
  Napi::Value TouchAsync(const Napi::CallbackInfo& info);
  Napi::Value PopulateAsync(const Napi::CallbackInfo& info);
  Napi::Value Unmap(const Napi::CallbackInfo& info);

  uint8_t* addr_ = nullptr;
  uint64_t len_ = 0;
};

void InitMem(Napi::Env env, Napi::Object exports);

}  // namespace ppsim
