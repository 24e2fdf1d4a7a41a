// See frame_reader.h.
#include "frame_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "util.h"

namespace ppsim {

GuestTarget TargetFromArgs(const Napi::CallbackInfo& info, const char* who) {
  Napi::Env env = info.Env();
  int mem = ArgFd(info, 0, "memfd");
  int uffd = ArgFd(info, 1, "uffd");
  GuestTarget t;
  t.base = ArgU64(info, 2, "base");
  t.ps = ArgU64(info, 3, "pageSize");
  t.pc = ArgU64(info, 4, "pageCount");
  if (t.ps == 0 || (t.ps & (t.ps - 1)) != 0 || t.ps > (1u << 30)) ThrowRange(env, "pageSize must be a power of two up to 1 GiB");
  if (t.base % t.ps != 0) ThrowRange(env, "base must be page aligned");
  // Page numbers travel as u32 (the codec).
  if (t.pc == 0 || t.pc > (1ull << 32)) ThrowRange(env, "pageCount must be 1 … 2^32");
  if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull()) {
    t.states = PageStatesOf(env, info[5]);
    if (t.states->count() != t.pc) ThrowRange(env, "the page table's page count is not the target's");
    if (t.states->pageSize() != t.ps) ThrowRange(env, "the page table's page size is not the target's");
  }
  if (info.Length() > 6 && !info[6].IsUndefined() && !info[6].IsNull()) {
    // Holes are for install mode "copy": with a page table a zero page is claimed and mapped (CONTINUE's way).
    if (t.states != nullptr) ThrowType(env, "a target takes a page table or a zero-hole table, not both");
    t.holes = ZeroHolesOf(env, info[6]);
    if (t.holes->count() != t.pc) ThrowRange(env, "the zero-hole table's page count is not the target's");
  }
  t.mem = fcntl(mem, F_DUPFD_CLOEXEC, 0);
  if (t.mem < 0) ThrowErrno(env, errno, std::string(who) + ": fcntl(F_DUPFD_CLOEXEC, memfd " + std::to_string(mem) + ")");
  t.uffd = fcntl(uffd, F_DUPFD_CLOEXEC, 0);
  if (t.uffd < 0) {
    int e = errno;
    close(t.mem);
    ThrowErrno(env, e, std::string(who) + ": fcntl(F_DUPFD_CLOEXEC, uffd " + std::to_string(uffd) + ")");
  }
  return t;
}

void CloseTarget(GuestTarget* t) {
  for (int* fd : {&t->mem, &t->uffd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  // The tables too: a table over memory populated ahead holds that memory (its alias) until the last
  // holder lets go, which must not wait for V8 to collect a stopped receiver.
  t->states.reset();
  t->holes.reset();
}

bool LaneStreamEnd(const StreamReader& in, int* err, std::string* what, bool* protocol) {
  using E = StreamReader::End;
  *err = 0;
  *protocol = false;
  switch (in.end) {
    case E::Closed:
      *what = "fault lane closed by the peer";
      return true;
    case E::Failed:
      *err = in.err;
      *what = "recv(fault lane)";
      return true;
    case E::Stalled:
      *protocol = true;
      *what = "fault lane: the peer stopped sending for " + std::to_string(in.silentMs / 1000) + " s in the middle of a frame (" +
              std::to_string(in.partial) + " bytes of it received)";
      return true;
    default:
      return false;
  }
}

}  // namespace ppsim
