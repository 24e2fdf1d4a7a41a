// The guest's side of the unix socket: the hello with SCM_RIGHTS, then the
// control protocol (docs/native.md): length-prefixed binary frames.
#pragma once

#include <cstdint>
#include <string>

#include "config.h"
#include "memory.h"
#include "vcpu.h"

namespace guest {

enum Op : uint8_t { kPause = 1, kResume = 2, kRun = 3, kThrottle = 4, kProgress = 5, kHash = 6, kQuit = 7, kProgressLog = 8 };

bool SendHello(int sock, const Config& cfg, const Ram& ram, Role role, std::string& err);
// Serves requests until QUIT (returns 0) or the agent hangs up / errors.
int ServeControl(int sock, const Config& cfg, const Ram& ram, Machine& m);

}  // namespace guest
