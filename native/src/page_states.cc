// See page_states.h. PageTable: the JS side's hands on the claims — the
// install of an urgent reply (one page at a time, on the JS thread), the
// engine's wake, the switchover's dropped pages — next to the bulk
// receiver threads that hold the same table.
#include "page_states.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../common/uapi.h"
#include "mem.h"
#include "nt_copy.h"
#include "util.h"

namespace ppsim {

int ContinueRange(int uffd, uint64_t start, uint64_t len, uint64_t ps, bool skipMapped, uint64_t* done) {
  const uint64_t total = len;
  if (done != nullptr) *done = 0;
  while (len > 0) {
    // uffdio_continue: range, mode (0: wake the range's waiters), out mapped (bytes done, or -errno).
    uffdio_continue c{};
    c.range.start = start;
    c.range.len = len;
    if (ioctl(uffd, UFFDIO_CONTINUE, &c) == 0) return 0;
    int e = errno;
    if (c.mapped > 0 && static_cast<uint64_t>(c.mapped) < len) {  // stopped part-way (EAGAIN): go on from there
      start += static_cast<uint64_t>(c.mapped);
      len -= static_cast<uint64_t>(c.mapped);
      continue;
    }
    if (e == EINTR || e == EAGAIN) continue;
    if (e == EEXIST && skipMapped) {  // this page is mapped already: the next one
      start += ps;
      len -= ps;
      continue;
    }
    if (done != nullptr) *done = total - len;
    return e;
  }
  return 0;
}

int ZeropageRange(int uffd, uint64_t start, uint64_t len) {
  while (len > 0) {
    uffdio_zeropage z{};
    z.range.start = start;
    z.range.len = len;
    if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0) return 0;
    int e = errno;
    if (z.zeropage > 0 && static_cast<uint64_t>(z.zeropage) < len) {
      start += static_cast<uint64_t>(z.zeropage);
      len -= static_cast<uint64_t>(z.zeropage);
      continue;
    }
    if (e == EINTR || e == EAGAIN) continue;
    return e;
  }
  return 0;
}

PageStates::~PageStates() {
  if (alias_ != nullptr) (void)munmap(alias_, aliasLen_);  // our own mapping of aliasLen_ bytes
}

int MapZeroRange(int uffd, uint64_t start, uint64_t len, uint64_t ps, bool populated) {
  if (!populated) return ZeropageRange(uffd, start, len);
  int e = ContinueRange(uffd, start, len, ps, true);
  if (e != EFAULT) return e;
  // Some page of it is a hole (punched: a switchover's stale page, an install that failed). Page by
  // page; those the first call mapped are EEXIST now, passed over.
  for (uint64_t a = start; a < start + len; a += ps) {
    e = ContinueRange(uffd, a, ps, ps, true);
    if (e == EFAULT) e = ZeropageRange(uffd, a, ps);
    if (e != 0) return e;
  }
  return 0;
}

int PunchRange(int memfd, uint64_t offset, uint64_t len) {
  return fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0 ? 0 : errno;
}

namespace {

// pwrite of one whole page (a short write of a memfd would be ENOSPC/EINTR: retried or failed).
int WritePage(int memfd, const uint8_t* data, uint64_t ps, uint64_t at) {
  uint64_t done = 0;
  while (done < ps) {
    ssize_t r = pwrite(memfd, data + done, ps - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    done += static_cast<uint64_t>(r);
  }
  return 0;
}

}  // namespace

class PageTable : public Napi::ObjectWrap<PageTable> {
 public:
  static Napi::FunctionReference* ctor;

  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "PageTable",
                                   {InstanceMethod<&PageTable::Install>("install"), InstanceMethod<&PageTable::Wake>("wake"),
                                    InstanceMethod<&PageTable::MarkAbsent>("markAbsent"), InstanceMethod<&PageTable::State>("state"),
                                    InstanceMethod<&PageTable::Close>("close")});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  // new PageTable(memfd, uffd, base: bigint, pageSize, pageCount, alias?: Mapping): with an alias, the memfd is populated (page_states.h)
  explicit PageTable(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PageTable>(info) {
    Napi::Env env = info.Env();
    int mem = ArgFd(info, 0, "memfd");
    int uffd = ArgFd(info, 1, "uffd");
    base_ = ArgU64(info, 2, "base");
    ps_ = ArgU64(info, 3, "pageSize");
    uint64_t pc = ArgU64(info, 4, "pageCount");
    if (ps_ == 0 || (ps_ & (ps_ - 1)) != 0 || ps_ > (1u << 30)) ThrowRange(env, "pageSize must be a power of two up to 1 GiB");
    if (base_ % ps_ != 0) ThrowRange(env, "base must be page aligned");
    if (pc == 0 || pc > (1ull << 32)) ThrowRange(env, "pageCount must be 1 … 2^32");
    mem_ = fcntl(mem, F_DUPFD_CLOEXEC, 0);
    if (mem_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, memfd " + std::to_string(mem) + ")");
    uffd_ = fcntl(uffd, F_DUPFD_CLOEXEC, 0);
    if (uffd_ < 0) {
      int e = errno;
      close(mem_);
      ThrowErrno(env, e, "fcntl(F_DUPFD_CLOEXEC, uffd " + std::to_string(uffd) + ")");
    }
    const bool populated = info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull();
    uint8_t* alias = populated ? TakeAlias(env, info[5], pc) : nullptr;
    states_ = std::make_shared<PageStates>(static_cast<size_t>(pc), ps_, alias, alias == nullptr ? 0 : pc * ps_);
  }

  ~PageTable() override { CloseFds(); }

  // Populated memory's alias (page_states.h): a Mapping of the whole memfd with every page mapped
  // (the pool's, dest-prealloc.ts: populated through it), handed over to the table.
  uint8_t* TakeAlias(Napi::Env env, Napi::Value v, uint64_t pc) {
    if (!v.IsObject() || Mapping::ctor == nullptr || !v.As<Napi::Object>().InstanceOf(Mapping::ctor->Value())) {
      CloseFds();
      ThrowType(env, "alias must be a Mapping of the populated memfd");
    }
    Mapping* m = Mapping::Unwrap(v.As<Napi::Object>());
    uint64_t len = 0;
    uint8_t* p = nullptr;
    try {
      p = m->Release(env, &len);
    } catch (...) {
      CloseFds();
      throw;
    }
    if (len != pc * ps_) {
      (void)munmap(p, len);
      CloseFds();
      ThrowRange(env, "alias is " + std::to_string(len) + " bytes, the guest's RAM " + std::to_string(pc * ps_));
    }
    return p;
  }

  std::shared_ptr<PageStates> states() const { return states_; }

 private:
  uint32_t ArgPage(const Napi::CallbackInfo& info, size_t i) {
    uint64_t p = ArgU64(info, i, "page");
    if (p >= states_->count()) ThrowRange(info.Env(), "page " + std::to_string(p) + " is beyond the table's " + std::to_string(states_->count()) + " pages");
    return static_cast<uint32_t>(p);
  }

  void Open(Napi::Env env, const char* what) {
    if (mem_ < 0) ThrowErrno(env, EBADF, std::string("PageTable.") + what + ": closed");
  }

  // install(page, data: Uint8Array | null, guestRuns: boolean) -> 0 installed, 1 another path is
  // receiving it (its map wakes the waiters), 2 mapped already (its waiters woken).
  Napi::Value Install(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Open(env, "install");
    uint32_t p = ArgPage(info, 0);
    const uint8_t* data = nullptr;
    if (!info[1].IsNull()) {
      Bytes b = ArgBytes(info, 1, "data");
      if (b.len != ps_) ThrowRange(env, "data must be one page (" + std::to_string(ps_) + " bytes)");
      data = b.data;
    }
    bool runs = info.Length() > 2 && info[2].ToBoolean().Value();
    uint64_t dst = base_ + p * ps_, at = p * ps_;
    if (!runs) {
      // The guest does not run: overwriting is allowed (pre-copy resends); written, then mapped at once.
      // A zero page never written needs no zeros where the memory is populated (its page is zero).
      const bool mapped = states_->Get(p) == kMapped;
      const bool write = data != nullptr || mapped || !states_->populated();
      int e = !write ? 0 : data != nullptr ? Write(p, data, at) : ZeroPage(at);
      if (e != 0) ThrowErrno(env, e, "pwrite(memfd, page " + std::to_string(p) + ")");
      e = mapped ? 0 : write ? ContinueRange(uffd_, dst, ps_, ps_, true) : MapZeroRange(uffd_, dst, ps_, ps_, true);  // a resend is mapped already
      if (e != 0) {
        // A hole again (no bytes of it left behind for a later zero copy, which writes nothing in populated memory).
        if (PunchRange(mem_, at, ps_) == 0) states_->Absent(p);
        ThrowErrno(env, e, std::string(write ? "UFFDIO_CONTINUE" : "UFFDIO_CONTINUE/ZEROPAGE") + "(dst " + Hex(dst) + ", len " + std::to_string(ps_) + ")");
      }
      states_->Mapped(p);
      return Napi::Number::New(env, 0);
    }
    if (!states_->Claim(p)) {
      if (states_->Get(p) == kReceiving) return Napi::Number::New(env, 1);
      WakePage(dst);
      return Napi::Number::New(env, 2);
    }
    // Ours: a hole nobody else writes. Bytes first, then the map (which wakes the waiters).
    int e = data != nullptr ? Write(p, data, at) : 0;
    std::string what = std::string(states_->Alias(p) != nullptr ? "store through the alias" : "pwrite(memfd") + ", page " + std::to_string(p) + ")";
    if (e == 0) {
      // Strict: EEXIST on a page we claimed is refused. Populated memory's zero page is mapped as it
      // is, ZEROPAGE only where it is a hole (punched since: CONTINUE finds no folio, EFAULT).
      if (data != nullptr) e = ContinueRange(uffd_, dst, ps_, ps_, false);
      else if (!states_->populated()) e = ZeropageRange(uffd_, dst, ps_);
      else if ((e = ContinueRange(uffd_, dst, ps_, ps_, false)) == EFAULT) e = ZeropageRange(uffd_, dst, ps_);
      what = std::string(data != nullptr || states_->populated() ? "UFFDIO_CONTINUE" : "UFFDIO_ZEROPAGE") + "(dst " + Hex(dst) + ", len " + std::to_string(ps_) + ")";
    }
    if (e != 0) {
      // Back to a hole, unclaimed: nothing of it was mapped (a failed map maps nothing of a one-page
      // range). A failed punch leaves it claimed: its bytes may be there, so nobody may map it.
      if (PunchRange(mem_, at, ps_) == 0) states_->Absent(p);
      ThrowErrno(env, e, what);
    }
    states_->Mapped(p);
    return Napi::Number::New(env, 0);
  }

  // wake(page) -> whether it woke: not while another path receives the page (its map will).
  Napi::Value Wake(const Napi::CallbackInfo& info) {
    Open(info.Env(), "wake");
    uint32_t p = ArgPage(info, 0);
    if (states_->Get(p) == kReceiving) return Napi::Boolean::New(info.Env(), false);
    WakePage(base_ + p * ps_);
    return Napi::Boolean::New(info.Env(), true);
  }

  // markAbsent(pages: Uint32Array): pages punched out (the guest does not run; no installer runs).
  Napi::Value MarkAbsent(const Napi::CallbackInfo& info) {
    Open(info.Env(), "markAbsent");
    Napi::Uint32Array a = ArgU32Array(info, 0, "pages");
    for (size_t i = 0; i < a.ElementLength(); i++) {
      if (a[i] >= states_->count()) ThrowRange(info.Env(), "page " + std::to_string(a[i]) + " is beyond the table");
      states_->Absent(a[i]);
    }
    return info.Env().Undefined();
  }

  // state(page) -> 0 absent, 1 receiving, 2 mapped (tests, reports).
  Napi::Value State(const Napi::CallbackInfo& info) {
    Open(info.Env(), "state");
    return Napi::Number::New(info.Env(), states_->Get(ArgPage(info, 0)));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseFds();
    states_.reset();  // the alias goes with the last receiver that held the table (frame_reader.cc CloseTarget)
    return info.Env().Undefined();
  }

  void CloseFds() {
    if (mem_ >= 0) close(mem_);
    if (uffd_ >= 0) close(uffd_);
    mem_ = uffd_ = -1;
  }

  // Page p's bytes into the memfd: through the alias where there is one (a store, no lock).
  int Write(uint32_t p, const uint8_t* data, uint64_t at) {
    uint8_t* a = states_->Alias(p);
    if (a == nullptr) return WritePage(mem_, data, ps_, at);
    StreamCopy(a, data, ps_);
    StreamFence();  // before the CONTINUE that maps the page into the guest
    return 0;
  }

  // A zero page before the guest runs: zeros written over whatever an older copy left.
  int ZeroPage(uint64_t at) {
    if (zeros_.size() < ps_) zeros_.assign(ps_, 0);
    return WritePage(mem_, zeros_.data(), ps_, at);
  }

  void WakePage(uint64_t dst) {
    uffdio_range r{dst, ps_};
    // Nobody may wait: a failed wake is not an error.
    (void)ioctl(uffd_, UFFDIO_WAKE, &r);
  }

  int mem_ = -1, uffd_ = -1;
  uint64_t base_ = 0, ps_ = 0;
  std::vector<uint8_t> zeros_;
  std::shared_ptr<PageStates> states_;
};

Napi::FunctionReference* PageTable::ctor = nullptr;

std::shared_ptr<PageStates> PageStatesOf(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || PageTable::ctor == nullptr || !v.As<Napi::Object>().InstanceOf(PageTable::ctor->Value()))
    ThrowType(env, "pageTable must be a PageTable");
  std::shared_ptr<PageStates> s = PageTable::Unwrap(v.As<Napi::Object>())->states();
  if (s == nullptr) ThrowType(env, "pageTable is closed");
  return s;
}

void InitPageStates(Napi::Env env, Napi::Object exports) { exports.Set("PageTable", PageTable::Init(env)); }

}  // namespace ppsim
