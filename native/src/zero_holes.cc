// The ZeroHoleTable JS object (zero_holes.h says what the table is for) and
// the reader's answer to a fault on a zero hole.
#include "zero_holes.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <string>

#include "../common/uapi.h"
#include "page_states.h"
#include "util.h"

namespace ppsim {

int AnswerZeroFault(int uffd, uint64_t addr, uint64_t pageSize) {
  const uint64_t start = addr & ~(pageSize - 1);
  int e = ZeropageRange(uffd, start, pageSize);  // maps a zero page into the hole, wakes the faulting thread
  if (e != EEXIST) return e;
  // The page came meanwhile (a demand reply): its install woke the thread, unless it came just
  // before the fault was raised; a wake costs nothing if nobody waits.
  uffdio_range r{start, pageSize};
  return ioctl(uffd, UFFDIO_WAKE, &r) == 0 ? 0 : errno;
}

namespace {

class ZeroHoleTable : public Napi::ObjectWrap<ZeroHoleTable> {
 public:
  static Napi::FunctionReference* ctor;

  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "ZeroHoleTable",
                                   {InstanceMethod<&ZeroHoleTable::Clear>("clear"), InstanceMethod<&ZeroHoleTable::Wrote>("wrote"),
                                    InstanceMethod<&ZeroHoleTable::Flags>("flags"),
                                    InstanceAccessor<&ZeroHoleTable::Holes>("holes")});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  // new ZeroHoleTable(pageCount)
  explicit ZeroHoleTable(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ZeroHoleTable>(info) {
    uint64_t pc = ArgU64(info, 0, "pageCount");
    // Page numbers travel as u32 (the codec).
    if (pc == 0 || pc > (1ull << 32)) ThrowRange(info.Env(), "pageCount must be 1 … 2^32");
    t_ = std::make_shared<ZeroHoles>(pc);
    if (!t_->ok()) ThrowErrno(info.Env(), ENOMEM, "calloc(" + std::to_string(pc) + " zero-hole flags)");
  }

  std::shared_ptr<ZeroHoles> table() const { return t_; }

 private:
  uint32_t ArgPage(const Napi::CallbackInfo& info, size_t i) {
    uint64_t p = ArgU64(info, i, "page");
    if (p >= t_->count()) ThrowRange(info.Env(), "page " + std::to_string(p) + " is beyond the table");
    return static_cast<uint32_t>(p);
  }

  // clear(pages: Uint32Array): those pages are no zero holes any more (punched out to be fetched again).
  Napi::Value Clear(const Napi::CallbackInfo& info) {
    Napi::Uint32Array a = ArgU32Array(info, 0, "pages");
    for (size_t i = 0; i < a.ElementLength(); i++) {
      if (a[i] >= t_->count()) ThrowRange(info.Env(), "page " + std::to_string(a[i]) + " is beyond the table");
      t_->Clear(a[i]);
    }
    return info.Env().Undefined();
  }

  // wrote(page): before the guest runs, JS wrote the page's data into the memfd itself.
  Napi::Value Wrote(const Napi::CallbackInfo& info) {
    t_->Wrote(ArgPage(info, 0));
    return info.Env().Undefined();
  }

  // flags(page) -> its flags (1 zero hole, 2 a fault on it was sent on, 4 written before the guest ran): tests, reports.
  Napi::Value Flags(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), t_->Get(ArgPage(info, 0)));
  }

  Napi::Value Holes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(t_->holes())); }

  std::shared_ptr<ZeroHoles> t_;
};

Napi::FunctionReference* ZeroHoleTable::ctor = nullptr;

}  // namespace

std::shared_ptr<ZeroHoles> ZeroHolesOf(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || ZeroHoleTable::ctor == nullptr || !v.As<Napi::Object>().InstanceOf(ZeroHoleTable::ctor->Value()))
    ThrowType(env, "zeroHoles must be a ZeroHoleTable");
  return ZeroHoleTable::Unwrap(v.As<Napi::Object>())->table();
}

void InitZeroHoles(Napi::Env env, Napi::Object exports) { exports.Set("ZeroHoleTable", ZeroHoleTable::Init(env)); }

}  // namespace ppsim
