// ppsim-guest: plays the VMM. Owns guest RAM (memfd, MAP_SHARED), creates the
// userfaultfd for its own address space, hands both to the agent over a unix
// socket (SCM_RIGHTS) and runs the workload on vCPU threads under the
// agent's control. Usage in docs/native.md.
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "config.h"
#include "control.h"
#include "memory.h"
#include "vcpu.h"

using namespace guest;

static int Usage(const char* msg) {
  fprintf(stderr,
          "ppsim-guest: %s\n"
          "usage: ppsim-guest --role source|destination --config FILE --socket PATH [--steps N] [--minor] [--memfd FD] [--no-wp] [--vcpu-nice N] [--control-rr PRIO] [--vcpu-rr PRIO]\n",
          msg);
  return 2;
}

int main(int argc, char** argv) {
  std::string role_s, config, socket_path;
  uint64_t steps = 0;
  bool minor = false, wp = true;
  int vcpu_nice = 0;
  int control_rr = 0;
  int vcpu_rr = 0;
  int memfd = -1;  // --memfd: guest RAM the agent made (populated ahead), inherited at this fd
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        Usage((std::string(name) + " needs a value").c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--role") role_s = val("--role");
    else if (a == "--config") config = val("--config");
    else if (a == "--socket") socket_path = val("--socket");
    else if (a == "--steps") {
      const char* s = val("--steps");
      char* end;
      errno = 0;
      steps = strtoull(s, &end, 10);
      if (errno || *end || steps == 0 || s[0] == '-') return Usage("--steps must be a positive integer");
    } else if (a == "--vcpu-nice") {
      const char* s = val("--vcpu-nice");
      char* end;
      errno = 0;
      long n = strtol(s, &end, 10);
      if (errno || *end || n < 0 || n > 19) return Usage("--vcpu-nice must be an integer in 0..19");
      vcpu_nice = static_cast<int>(n);
    } else if (a == "--control-rr") {
      const char* s = val("--control-rr");
      char* end;
      errno = 0;
      long n = strtol(s, &end, 10);
      if (errno || *end || n < 0 || n > 99) return Usage("--control-rr must be an integer in 0..99");
      control_rr = static_cast<int>(n);
    } else if (a == "--vcpu-rr") {
      const char* s = val("--vcpu-rr");
      char* end;
      errno = 0;
      long n = strtol(s, &end, 10);
      if (errno || *end || n < 0 || n > 99) return Usage("--vcpu-rr must be an integer in 0..99");
      vcpu_rr = static_cast<int>(n);
    } else if (a == "--memfd") {
      const char* s = val("--memfd");
      char* end = nullptr;
      errno = 0;
      long n = strtol(s, &end, 10);
      if (errno || *end || n < 3 || n > 1023) return Usage("--memfd must be an inherited file descriptor number in 3..1023");
      memfd = static_cast<int>(n);
    } else if (a == "--minor") minor = true;
    else if (a == "--no-wp") wp = false;
    else return Usage(("unknown argument " + a).c_str());
  }
  if (role_s != "source" && role_s != "destination") return Usage("--role must be source or destination");
  if (config.empty() || socket_path.empty()) return Usage("--config and --socket are required");
  Role role = role_s == "source" ? Role::Source : Role::Destination;
  if (memfd >= 0 && role != Role::Destination) return Usage("--memfd is for the destination (its memory populated ahead)");
  if (memfd >= 0 && !minor) return Usage("--memfd needs --minor: pages of populated memory are found by MINOR faults");
  signal(SIGPIPE, SIG_IGN);  // a vanished agent shows up as a write error instead

  Config cfg;
  std::string err;
  if (!LoadConfig(config, cfg, err)) {
    fprintf(stderr, "ppsim-guest: bad config: %s\n", err.c_str());
    return 2;
  }
  Ram ram;
  if (!CreateRam(cfg, memfd, ram, err)) {
    fprintf(stderr, "ppsim-guest: %s\n", err.c_str());
    return 1;
  }
  // Fill before registering: the fill itself must not count as dirtying.
  if (role == Role::Source) FillInitial(cfg, ram);
  if (!SetupUffd(role, minor, wp, cfg.huge_page_size != 0, ram, err)) {
    fprintf(stderr, "ppsim-guest: %s\n", err.c_str());
    return 1;
  }

  // Built (its compute loop calibrated, ~20 ms) before the agent hears from
  // us: built after, a RESUME sent at once (a post-copy switchover right
  // after the handshake) waited for the calibration, inside the downtime.
  // --vcpu-rr: a destination's vCPU threads wait for RESUME in SCHED_RR and leave it after
  // their first step (vcpu.cc Run): that step ends the guest's downtime (PPSIM_SWITCHOVER_RR).
  Machine m(cfg, ram.base, steps, role == Role::Destination, vcpu_nice, role == Role::Destination ? vcpu_rr : 0);

  // The control thread answers PAUSE and RESUME inside the downtime: in SCHED_RR
  // it gets a CPU at once however busy the host (src/real/loop-priority.ts).
  // Reset-on-fork: the vCPU threads it creates start in SCHED_OTHER (and lower
  // their own nice). Best effort: without the privilege it stays as it is.
  if (control_rr > 0) {
    sched_param sp{};
    sp.sched_priority = control_rr;
    (void)sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp);
  }

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return Usage("--socket path too long");
  memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  // sockaddr_un* -> sockaddr*: the standard sockets API cast.
  if (sock < 0 || connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    fprintf(stderr, "ppsim-guest: connect(%s) failed: %s\n", socket_path.c_str(), strerror(errno));
    return 1;
  }
  if (!SendHello(sock, cfg, ram, role, err)) {
    fprintf(stderr, "ppsim-guest: %s\n", err.c_str());
    return 1;
  }
  int rc = ServeControl(sock, cfg, ram, m);
  fflush(stderr);
  // _exit: vCPU threads may be parked or blocked in a fault; do not run
  // static destructors under them.
  _exit(rc);
}
