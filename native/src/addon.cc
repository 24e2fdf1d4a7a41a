// ppsim_native: thin wrappers over the kernel interfaces the real back end
// needs (memfd, mmap, userfaultfd, PAGEMAP_SCAN, SCM_RIGHTS). Policy lives in
// TypeScript (src/real/); this file only registers the modules.
#include <napi.h>

namespace ppsim {
void InitMem(Napi::Env env, Napi::Object exports);
void InitUffd(Napi::Env env, Napi::Object exports);
void InitFaultReader(Napi::Env env, Napi::Object exports);
void InitPagemap(Napi::Env env, Napi::Object exports);
void InitUnixSocket(Napi::Env env, Napi::Object exports);
void InitBench(Napi::Env env, Napi::Object exports);
void InitBulkSender(Napi::Env env, Napi::Object exports);
void InitBulkReceiver(Napi::Env env, Napi::Object exports);
void InitZeroHoles(Napi::Env env, Napi::Object exports);
void InitPageStates(Napi::Env env, Napi::Object exports);
void InitBenchInstall(Napi::Env env, Napi::Object exports);
void InitSched(Napi::Env env, Napi::Object exports);
void InitFaultLane(Napi::Env env, Napi::Object exports);
void InitLaneServer(Napi::Env env, Napi::Object exports);
void InitPuncher(Napi::Env env, Napi::Object exports);
}  // namespace ppsim

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ppsim::InitMem(env, exports);
  ppsim::InitUffd(env, exports);
  ppsim::InitFaultReader(env, exports);
  ppsim::InitPagemap(env, exports);
  ppsim::InitUnixSocket(env, exports);
  ppsim::InitBench(env, exports);
  ppsim::InitBulkSender(env, exports);
  ppsim::InitBulkReceiver(env, exports);
  ppsim::InitPageStates(env, exports);
  ppsim::InitZeroHoles(env, exports);
  ppsim::InitBenchInstall(env, exports);
  ppsim::InitSched(env, exports);
  ppsim::InitFaultLane(env, exports);
  ppsim::InitLaneServer(env, exports);
  ppsim::InitPuncher(env, exports);
  return exports;
}

NODE_API_MODULE(ppsim_native, Init)
