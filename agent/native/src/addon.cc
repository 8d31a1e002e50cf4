// SPDX-License-Identifier: Apache-2.0
/*
 * N-API only: JS values in and out, the libuv handles that drain the ring buffer. Everything
 * about libbpf lives in loader.c.
 *
 * Draining: a uv_poll_t on the ring buffer's epoll fd (readable when the kernel sent a wake-up,
 * which it does only when wakeup_bytes are pending) plus a uv_timer_t every flushMs for the
 * rest. Each drain copies records into ONE fixed arena Buffer and calls the JS callback once per
 * arena-full: (arena, usedBytes, count). No thread, no ThreadSafeFunction: the callback runs on
 * the JS thread from Node's own loop (a wake-up per record cost ~5 us/event in Node,
 * reference/bpf.md section 4).
 *
 * Socket records are held in the arena from tick to tick until kHoldBytes or kHoldMs: a call
 * into JS for a few records finds its code and data cold on a host whose cores the traced
 * programs keep busy (a server doing ~300 us of work per request: 12.6 us of agent CPU per span
 * with a call every tick, 11.3 held, medians of 3 noisy runs of bench/agent.ts). A process
 * record (exec, fork, exit) is handed over at the next tick with everything before it:
 * selecting a new process must not wait. flush() hands over everything at once.
 */
#include <napi.h>
#include <uv.h>

#include <dlfcn.h>
#include <malloc.h>
// ISA-L's igzip (gzip() below): its header gives the stream struct; the library itself is
// loaded at run time. Without the header (libisal-dev) the addon builds without it.
#if __has_include(<isa-l/igzip_lib.h>)
#include <isa-l/igzip_lib.h>
#define ESPAN_HAVE_ISAL 1
#endif

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "record.h"
#include "http1_scan.h"
#include "loader.h"
}
#include "span_encoder.h"

namespace {

// Drains per poll/timer tick before yielding to the loop, so a flood cannot starve it:
// 8 arenas of 4 MiB is far above the ~300k events/s measured on 2 vCPUs.
constexpr int kMaxRoundsPerTick = 8;
constexpr int kMaxProgs = 32;
// Socket records are held until this many bytes or milliseconds (see the top of this file).
// 1 MiB / 250 ms, from 256 KiB / 100 ms: at ~3k requests/s (the heavier server of bench:agent:
// 4 records a request, ~300 bytes each with their scans) JS was called ~14 times a second, for
// ~4 now; each call finds the agent's code and data cold on cores the server keeps busy.
constexpr size_t kHoldBytes = 1024 * 1024;
constexpr uint64_t kHoldMs = 250;

std::string ErrnoName(int err) {
  const char* n = strerrorname_np(err < 0 ? -err : err);
  return n ? n : "E?";
}

// Errors carry .code (errno name), .errno (negative), .step, as cilium/ebpf's wrapped errors.
Napi::Error LoaderError(Napi::Env env, const espan_error& e) {
  Napi::Error err = Napi::Error::New(env, e.msg);
  err.Set("code", Napi::String::New(env, ErrnoName(e.err)));
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("step", Napi::String::New(env, e.step));
  return err;
}

Napi::Error Errno(Napi::Env env, int err, const std::string& step) {
  espan_error e{};
  e.err = err < 0 ? err : -err;
  snprintf(e.step, sizeof(e.step), "%s", step.c_str());
  snprintf(e.msg, sizeof(e.msg), "%s: %s: %s", step.c_str(), ErrnoName(e.err).c_str(),
           strerror(-e.err));
  return LoaderError(env, e);
}

class Capture : public Napi::ObjectWrap<Capture> {
 public:
  static void Init(Napi::Env env) {
    Napi::Function f = DefineClass(
        env, "Capture",
        {
            InstanceMethod("attach", &Capture::Attach),
            InstanceMethod("detach", &Capture::Detach),
            InstanceMethod("addPid", &Capture::AddPid),
            InstanceMethod("removePid", &Capture::RemovePid),
            InstanceMethod("setTraceAll", &Capture::SetTraceAll),
            InstanceMethod("setCaptureBytes", &Capture::SetCaptureBytes),
            InstanceMethod("setWakeupBytes", &Capture::SetWakeupBytes),
            InstanceMethod("setEveryChunk", &Capture::SetEveryChunk),
            InstanceMethod("setRunStats", &Capture::SetRunStats),
            InstanceMethod("start", &Capture::Start),
            InstanceMethod("flush", &Capture::Flush),
            InstanceMethod("stop", &Capture::Stop),
            InstanceMethod("stats", &Capture::Stats),
            InstanceMethod("strategy", &Capture::Strategy),
            InstanceMethod("close", &Capture::Close),
        });
    // Per-environment (worker threads each load the addon): the env owns and frees it.
    env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(f)));
  }

  static Napi::Object NewInstance(Napi::Env env) {
    return env.GetInstanceData<Napi::FunctionReference>()->New({});
  }

  // Not callable from JS: open() builds the instance and hands it the loader.
  explicit Capture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Capture>(info) {}

  // Reached only when not started (start() holds a reference) or at environment teardown.
  ~Capture() override {
    StopHandles(false);
    if (loader_) espan_close(loader_);
  }

  void Adopt(espan_loader* l) { loader_ = l; }

 private:
  // Handles live in their own heap block: uv_close is asynchronous and may finish after this
  // object is gone.
  struct Handles {
    uv_poll_t poll;
    uv_timer_t timer;
    Capture* owner;
    int open;
  };

  espan_loader* loader_ = nullptr;
  Handles* handles_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::Reference<Napi::Buffer<uint8_t>> arena_;
  bool in_drain_ = false;
  bool stop_pending_ = false;   // stop() from inside the callback: finish after it returns
  bool close_pending_ = false;  // close() from inside the callback: likewise
  double poll_wakeups_ = 0;     // drains started by a kernel wake-up
  double timer_ticks_ = 0;      // drains started by the flush timer
  uv_loop_t* loop_ = nullptr;
  size_t held_bytes_ = 0;       // records in the arena not handed to JS yet
  uint32_t held_count_ = 0;
  uint64_t held_since_ = 0;     // uv_now() when the first of them was copied

  espan_loader* Need(const Napi::Env& env) {
    if (!loader_) throw Napi::Error::New(env, "capture is closed");
    return loader_;
  }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    espan_error e{};
    if (espan_attach(Need(info.Env()), &e)) throw LoaderError(info.Env(), e);
    return info.Env().Undefined();
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    espan_detach(Need(info.Env()));
    return info.Env().Undefined();
  }

  static uint32_t Pid(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), "pid must be a number");
    return info[0].As<Napi::Number>().Uint32Value();
  }

  Napi::Value AddPid(const Napi::CallbackInfo& info) {
    uint32_t flags = ESPAN_PID_TRACE;
    if (info.Length() > 1 && info[1].IsNumber()) flags = info[1].As<Napi::Number>().Uint32Value();
    int err = espan_pid_set(Need(info.Env()), Pid(info), flags);
    if (err) throw Errno(info.Env(), err, "addPid");
    return info.Env().Undefined();
  }

  Napi::Value RemovePid(const Napi::CallbackInfo& info) {
    int err = espan_pid_del(Need(info.Env()), Pid(info));
    if (err) throw Errno(info.Env(), err, "removePid");
    return info.Env().Undefined();
  }

  static bool Flag(const Napi::CallbackInfo& info) {
    return info.Length() > 0 && info[0].ToBoolean().Value();
  }

  static uint32_t Count(const Napi::CallbackInfo& info, const char* what) {
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
    double v = info[0].As<Napi::Number>().DoubleValue();
    if (v < 0) throw Napi::RangeError::New(info.Env(), std::string(what) + " must be >= 0");
    return v > 4294967295.0 ? 4294967295u : static_cast<uint32_t>(v);
  }

  Napi::Value SetTraceAll(const Napi::CallbackInfo& info) {
    espan_set_trace_all(Need(info.Env()), Flag(info));
    return info.Env().Undefined();
  }

  Napi::Value SetCaptureBytes(const Napi::CallbackInfo& info) {
    uint32_t n = espan_set_capture_bytes(Need(info.Env()), Count(info, "captureBytes"));
    return Napi::Number::New(info.Env(), n);
  }

  Napi::Value SetWakeupBytes(const Napi::CallbackInfo& info) {
    espan_set_wakeup_bytes(Need(info.Env()), Count(info, "wakeupBytes"));
    return info.Env().Undefined();
  }

  Napi::Value SetEveryChunk(const Napi::CallbackInfo& info) {
    espan_set_every_chunk(Need(info.Env()), Flag(info));
    return info.Env().Undefined();
  }

  Napi::Value SetRunStats(const Napi::CallbackInfo& info) {
    int err = espan_set_run_stats(Need(info.Env()), Flag(info));
    if (err) throw Errno(info.Env(), err, "bpf_enable_stats");
    return info.Env().Undefined();
  }

  Napi::Value Strategy(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), espan_strategy_name(espan_strategy(Need(info.Env()))));
  }

  // ---- draining ------------------------------------------------------------------------------

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    espan_loader* l = Need(env);
    if (handles_) throw Napi::Error::New(env, "capture already started");
    if (info.Length() < 1 || !info[0].IsFunction())
      throw Napi::TypeError::New(env, "start(callback, flushMs): callback must be a function");
    double flush_ms = 10;  // 10-20 ms bounds the delay without a wake-up (pitfall 7)
    if (info.Length() > 1 && info[1].IsNumber()) flush_ms = info[1].As<Napi::Number>().DoubleValue();
    if (flush_ms < 1) flush_ms = 1;

    if (arena_.IsEmpty())
      arena_ = Napi::Persistent(Napi::Buffer<uint8_t>::New(env, ESPAN_ARENA_BYTES));
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
      throw Napi::Error::New(env, "start: no libuv loop");
    loop_ = loop;
    auto* h = new Handles{};
    h->owner = this;
    int err = uv_poll_init(loop, &h->poll, espan_poll_fd(l));
    if (err) {
      delete h;
      throw Napi::Error::New(env, std::string("start: uv_poll_init: ") + uv_strerror(err));
    }
    uv_timer_init(loop, &h->timer);
    h->poll.data = h;
    h->timer.data = h;
    h->open = 2;
    handles_ = h;
    uv_poll_start(&h->poll, UV_READABLE, OnPoll);
    uint64_t ms = static_cast<uint64_t>(flush_ms);
    uv_timer_start(&h->timer, OnTimer, ms, ms);
    Ref();  // keep this object alive while the loop may call into it
    return env.Undefined();
  }

  static void OnPoll(uv_poll_t* p, int status, int) {
    auto* h = static_cast<Handles*>(p->data);
    if (!h->owner || status != 0) return;
    h->owner->poll_wakeups_++;
    h->owner->DrainFromLoop(false);
  }

  static void OnTimer(uv_timer_t* t) {
    auto* h = static_cast<Handles*>(t->data);
    if (!h->owner) return;
    h->owner->timer_ticks_++;
    h->owner->DrainFromLoop(false);
  }

  static void OnClosed(uv_handle_t* handle) {
    auto* h = static_cast<Handles*>(handle->data);
    if (--h->open == 0) delete h;
  }

  void DrainFromLoop(bool everything) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      Drain(env, everything);
    } catch (const Napi::Error& e) {
      // An exception in the JS callback: surface it as an uncaught exception, like an
      // EventEmitter listener would, instead of losing it inside the loop.
      napi_fatal_exception(env, e.Value());
    }
  }

  // Hands the held records to JS now? Not while socket records are few and fresh (held_*).
  bool KeepHolding(int drained, bool everything, bool process_records) const {
    if (everything || drained != 0 || process_records) return false;
    return held_bytes_ < kHoldBytes && uv_now(loop_) - held_since_ < kHoldMs;
  }

  // Returns the number of records handed to JS; with `everything`, none is held back.
  uint32_t Drain(Napi::Env env, bool everything) {
    if (!loader_ || in_drain_ || callback_.IsEmpty()) return 0;
    in_drain_ = true;
    uint32_t total = 0;
    Napi::Buffer<uint8_t> arena = arena_.Value();
    try {
      for (int round = 0; round < kMaxRoundsPerTick && loader_ && !close_pending_ && !stop_pending_;
           round++) {
        uint32_t held_before = held_count_;
        bool process_records = false;
        int r = espan_drain(loader_, arena.Data(), arena.Length(), &held_bytes_, &held_count_,
                            &process_records);
        if (r < 0) throw Errno(env, r, "ring_buffer__consume");
        if (held_count_ == 0) break;
        if (held_before == 0) held_since_ = uv_now(loop_);
        if (KeepHolding(r, everything, process_records)) break;
        size_t used = held_bytes_;
        uint32_t count = held_count_;
        held_bytes_ = 0;
        held_count_ = 0;
        total += count;
        Napi::Object recv = Value();
        callback_.MakeCallback(recv, {arena, Napi::Number::New(env, static_cast<double>(used)),
                                      Napi::Number::New(env, count)});
        if (r == 0 || callback_.IsEmpty()) break;
      }
    } catch (...) {
      in_drain_ = false;
      FinishPending();
      throw;
    }
    in_drain_ = false;
    FinishPending();
    return total;
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Need(info.Env());
    if (callback_.IsEmpty()) throw Napi::Error::New(info.Env(), "flush: start() first");
    return Napi::Number::New(info.Env(), Drain(info.Env(), true));
  }

  void StopHandles(bool unref = true) {
    // Held records go with the capture's end, as records still in the ring do.
    held_bytes_ = 0;
    held_count_ = 0;
    if (!handles_) return;
    Handles* h = handles_;
    handles_ = nullptr;
    h->owner = nullptr;
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), OnClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&h->timer), OnClosed);
    if (unref) Unref();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopHandles();
    if (in_drain_)
      stop_pending_ = true;
    else
      callback_.Reset();
    return info.Env().Undefined();
  }

  void FinishPending() {
    if (stop_pending_) {
      stop_pending_ = false;
      callback_.Reset();
    }
    if (close_pending_) {
      close_pending_ = false;
      callback_.Reset();
      if (loader_) espan_close(loader_);
      loader_ = nullptr;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopHandles();
    if (in_drain_) {
      close_pending_ = true;  // called from inside the callback: finish after it returns
    } else {
      callback_.Reset();
      if (loader_) espan_close(loader_);
      loader_ = nullptr;
    }
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    espan_loader* l = Need(env);
    struct espan_stats s{};
    int err = espan_read_stats(l, &s);
    if (err) throw Errno(env, err, "stats");
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object o = Napi::Object::New(env);
    o.Set("strategy", espan_strategy_name(espan_strategy(l)));
    const char* fallback = espan_strategy_fallback(l);
    o.Set("strategyFallback", fallback ? Napi::Value(Napi::String::New(env, fallback)) : env.Null());
    o.Set("attached", espan_attached(l));
    o.Set("records", num(s.records - held_count_));  // handed to JS
    o.Set("batches", num(s.batches));
    o.Set("arenaFull", num(s.arena_full));
    o.Set("drops", num(s.drops));
    o.Set("noPayload", num(s.no_payload));
    o.Set("closeUnseen", num(s.close_unseen));
    o.Set("ringUsed", num(s.ring_used));
    o.Set("ringSize", num(s.ring_size));
    o.Set("runStats", s.run_stats);
    o.Set("pollWakeups", poll_wakeups_);
    o.Set("timerTicks", timer_ticks_);
    espan_prog_stat ps[kMaxProgs];
    int n = espan_prog_stats(l, ps, kMaxProgs);
    Napi::Array progs = Napi::Array::New(env);
    for (int i = 0; i < n; i++) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", ps[i].name);
      p.Set("runCount", num(ps[i].run_cnt));
      p.Set("runTimeNs", num(ps[i].run_time_ns));
      p.Set("recursionMisses", num(ps[i].recursion_misses));
      p.Set("verifiedInsns", num(ps[i].verified_insns));
      progs.Set(i, p);
    }
    o.Set("programs", progs);
    return o;
  }
};

uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0)
    throw Napi::RangeError::New(o.Env(), std::string(key) + " out of range");
  return static_cast<uint32_t>(d);
}

bool OptBool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() ? dflt : v.ToBoolean().Value();
}

// open(opts): checks, open, rodata, load. The verifier runs here; attach() is separate so a
// caller can add pids first.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>()
                                                            : Napi::Object::New(env);
  espan_opts opts{};
  std::string strategy = "auto";
  if (o.Has("strategy") && !o.Get("strategy").IsUndefined())
    strategy = o.Get("strategy").ToString().Utf8Value();
  if (strategy == "auto")
    opts.strategy = ESPAN_STRATEGY_AUTO;
  else if (strategy == "tp_btf")
    opts.strategy = ESPAN_STRATEGY_TP_BTF;
  else if (strategy == "fd_lookup")
    opts.strategy = ESPAN_STRATEGY_FD_LOOKUP;
  else
    throw Napi::TypeError::New(env, "strategy must be 'tp_btf', 'fd_lookup' or 'auto', not '" +
                                        strategy + "'");
  opts.capture_bytes = OptU32(o, "captureBytes", 256);
  opts.wakeup_bytes = OptU32(o, "wakeupBytes", 1024 * 1024);  // the hold's size (kHoldBytes)
  opts.ring_bytes = OptU32(o, "ringBytes", 0);
  opts.trace_all = OptBool(o, "traceAll", false);
  opts.every_chunk = OptBool(o, "everyChunk", false);
  opts.run_stats = OptBool(o, "runStats", false);

  espan_error e{};
  espan_loader* l = espan_open(&opts, &e);
  if (!l) throw LoaderError(env, e);
  Napi::Object obj = Capture::NewInstance(env);
  Capture::Unwrap(obj)->Adopt(l);
  return obj;
}

// struct espan_scan (http1_scan.h) as compiled, for agent/src/assemble/http1-scan.ts.
Napi::Object ScanLayout(Napi::Env env) {
  auto num = [&](size_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object s = Napi::Object::New(env);
  s.Set("kind", num(offsetof(struct espan_scan, kind)));
  s.Set("flags", num(offsetof(struct espan_scan, flags)));
  s.Set("count", num(offsetof(struct espan_scan, count)));
  s.Set("endAt", num(offsetof(struct espan_scan, end_at)));
  s.Set("msgs", num(offsetof(struct espan_scan, msgs)));
  s.Set("msgSize", num(sizeof(struct espan_scan_msg)));
  s.Set("maxMsgs", num(ESPAN_SCAN_MAX));
  Napi::Object m = Napi::Object::New(env);
#define MSG(f) m.Set(#f, num(offsetof(struct espan_scan_msg, f)))
  MSG(bytes);
  MSG(at);
  MSG(head_bytes);
  MSG(status);
  MSG(method_len);
  MSG(target_at);
  MSG(target_len);
  MSG(path_len);
  MSG(flags);
  MSG(app);
#undef MSG
  s.Set("msg", m);
  Napi::Array names = Napi::Array::New(env, ESPAN_SCAN_APP_HEADERS);
  for (uint32_t i = 0; i < ESPAN_SCAN_APP_HEADERS; i++) names.Set(i, espan_scan_app_headers[i]);
  s.Set("appHeaders", names);
  s.Set("absent", num(ESPAN_SCAN_ABSENT));
  Napi::Object k = Napi::Object::New(env);
  k.Set("REQUESTS", num(ESPAN_SCAN_REQUESTS));
  k.Set("RESPONSES", num(ESPAN_SCAN_RESPONSES));
  s.Set("kinds", k);
  Napi::Object f = Napi::Object::New(env);
  f.Set("JS", num(ESPAN_SCAN_JS));
  f.Set("ENDED", num(ESPAN_SCAN_ENDED));
  f.Set("HEAD_COMPLETE", num(ESPAN_SCAN_HEAD_COMPLETE));
  f.Set("LENGTH", num(ESPAN_SCAN_LENGTH));
  f.Set("V11", num(ESPAN_SCAN_V11));
  s.Set("flagBits", f);
  return s;
}

// tuneMalloc(): glibc keeps the memory the agent frees for its next allocations, instead of
// handing it back to the kernel. By default glibc serves allocations of 128 KiB and more with
// mmap, and trims the heap's top once 2x that is free: so each batch body (~1 MiB), gzip's
// state (~256 KiB) and output came from memory the kernel had to fault in again, page by page.
// A page fault costs ~10 us on our VMs: a fresh 1 MiB Buffer written once cost 1.7-4.4 ms,
// against 0.03-0.12 ms with these settings (allocUnsafe + copy, 200 rounds). The cost is that
// the agent's RSS keeps its peak (bounded by its queue).
Napi::Value TuneMalloc(const Napi::CallbackInfo& info) {
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
  return Napi::Boolean::New(info.Env(), ok);
}

// gzip(data, level): data gzipped by ISA-L's igzip at level 1 (Debian's libisal2), else by
// libdeflate (Debian's libdeflate0, which libtiff6 depends on), when the system has them (both
// loaded at run time, so the addon builds and runs without them), or null: the caller uses
// node:zlib then. The same format (RFC 1952). A 10,000-span batch of the agent's JSON (~507
// bytes a span) at level 1: igzip 0.49 us a span (59.4 bytes a span gzipped), libdeflate 1.25
// (57.4), Node's zlib about twice libdeflate. Gzipping with libdeflate was ~19% of the agent's
// CPU (perf, hello world).
struct Libdeflate {
  void* (*alloc)(int);
  size_t (*compress)(void*, const void*, size_t, void*, size_t);
  size_t (*bound)(void*, size_t);
  void (*release)(void*);
};

const Libdeflate* LoadLibdeflate() {
  static const Libdeflate* lib = [] () -> const Libdeflate* {
    void* h = dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return nullptr;
    static Libdeflate l;
    l.alloc = reinterpret_cast<void* (*)(int)>(dlsym(h, "libdeflate_alloc_compressor"));
    l.compress = reinterpret_cast<size_t (*)(void*, const void*, size_t, void*, size_t)>(
        dlsym(h, "libdeflate_gzip_compress"));
    l.bound = reinterpret_cast<size_t (*)(void*, size_t)>(dlsym(h, "libdeflate_gzip_compress_bound"));
    l.release = reinterpret_cast<void (*)(void*)>(dlsym(h, "libdeflate_free_compressor"));
    if (!l.alloc || !l.compress || !l.bound || !l.release) return nullptr;
    return &l;
  }();
  return lib;
}

// One compressor and output area per thread (a worker loads the addon in its own thread), kept
// from call to call.
struct Deflater {
  void* c = nullptr;
  int level = -1;
  std::vector<uint8_t> out;
  ~Deflater() {
    if (c) LoadLibdeflate()->release(c);
  }
};
thread_local Deflater t_deflater;

#ifdef ESPAN_HAVE_ISAL
// ISA-L's stateless deflate (one call per body), level 1: its level buffer and output area are
// kept per thread, as the libdeflate compressor is.
struct Isal {
  void (*init)(struct isal_zstream*);
  int (*deflate)(struct isal_zstream*);
};

const Isal* LoadIsal() {
  static const Isal* lib = [] () -> const Isal* {
    void* h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) return nullptr;
    static Isal l;
    l.init = reinterpret_cast<void (*)(struct isal_zstream*)>(dlsym(h, "isal_deflate_stateless_init"));
    l.deflate = reinterpret_cast<int (*)(struct isal_zstream*)>(dlsym(h, "isal_deflate_stateless"));
    if (!l.init || !l.deflate) return nullptr;
    return &l;
  }();
  return lib;
}

struct IsalState {
  std::vector<uint8_t> level_buf = std::vector<uint8_t>(ISAL_DEF_LVL1_DEFAULT);
  std::vector<uint8_t> out;
};
thread_local IsalState t_isal;

// data[0, n) gzipped at level 1, or an empty Value when ISA-L is not there or did not manage
// (the caller falls back to libdeflate).
Napi::Value IsalGzip(Napi::Env env, const uint8_t* data, size_t n) {
  const Isal* lib = LoadIsal();
  if (!lib || n > UINT32_MAX / 2) return Napi::Value();
  IsalState& st = t_isal;
  // Room for incompressible data: stored blocks (5 bytes each 64 KiB), gzip header and
  // trailer, and the largest block header igzip may write before it gives up on compressing.
  size_t room = n + n / 64 + ISAL_DEF_MAX_HDR_SIZE + 1024;
  if (st.out.size() < room) st.out.resize(room);
  struct isal_zstream z;
  lib->init(&z);
  z.level = 1;
  z.level_buf = st.level_buf.data();
  z.level_buf_size = static_cast<uint32_t>(st.level_buf.size());
  z.gzip_flag = IGZIP_GZIP;
  z.end_of_stream = 1;
  z.flush = NO_FLUSH;
  z.next_in = const_cast<uint8_t*>(data);
  z.avail_in = static_cast<uint32_t>(n);
  z.next_out = st.out.data();
  z.avail_out = static_cast<uint32_t>(room);
  if (lib->deflate(&z) != COMP_OK || z.avail_in != 0) return Napi::Value();
  return Napi::Buffer<uint8_t>::Copy(env, st.out.data(), z.total_out);
}
#endif

// Which library gzip() uses at level 1: "isal", "libdeflate", or null (node:zlib then).
Napi::Value GzipLibrary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef ESPAN_HAVE_ISAL
  if (LoadIsal()) return Napi::String::New(env, "isal");
#endif
  if (LoadLibdeflate()) return Napi::String::New(env, "libdeflate");
  return env.Null();
}

Napi::Value Gzip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(env, "gzip(data, level): data must be a Uint8Array");
  auto data = info[0].As<Napi::TypedArray>();
  if (data.TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "gzip(data, level): data must be a Uint8Array");
  int level = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 1;
  if (level < 0 || level > 12) throw Napi::RangeError::New(env, "gzip: level 0 to 12");
  auto u8 = data.As<Napi::Uint8Array>();
#ifdef ESPAN_HAVE_ISAL
  if (level == 1) {
    Napi::Value gz = IsalGzip(env, u8.Data(), u8.ByteLength());
    if (!gz.IsEmpty()) return gz;
  }
#endif
  const Libdeflate* lib = LoadLibdeflate();
  if (!lib) return env.Null();
  Deflater& d = t_deflater;
  if (d.level != level) {
    if (d.c) lib->release(d.c);
    d.c = lib->alloc(level);
    d.level = d.c ? level : -1;
    if (!d.c) throw Napi::Error::New(env, "gzip: libdeflate_alloc_compressor failed");
  }
  size_t n = u8.ByteLength();
  size_t bound = lib->bound(d.c, n);
  if (d.out.size() < bound) d.out.resize(bound);
  size_t m = lib->compress(d.c, u8.Data(), n, d.out.data(), d.out.size());
  if (m == 0) throw Napi::Error::New(env, "gzip: libdeflate_gzip_compress found no room");
  return Napi::Buffer<uint8_t>::Copy(env, d.out.data(), m);
}

// scanHttp(payload): what the drain writes after a record with this payload (tests check it
// against the JS parser without a kernel in the loop). An empty Buffer when it is no HTTP/1.x.
Napi::Value ScanHttp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer())
    throw Napi::TypeError::New(env, "scanHttp(payload): payload must be a Buffer");
  auto payload = info[0].As<Napi::Buffer<uint8_t>>();
  struct espan_scan out;
  size_t n = espan_http1_scan(payload.Data(), payload.Length(), &out);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(&out), n);
}

// The record layout from offsetof/sizeof of bpf/record.h: JS never copies it by hand.
Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object fields = Napi::Object::New(env);
  auto field = [&](const char* name, size_t off, size_t size) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("offset", Napi::Number::New(env, static_cast<double>(off)));
    f.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    fields.Set(name, f);
  };
#define FIELD(m) field(#m, offsetof(struct espan_record, m), sizeof(((struct espan_record*)0)->m))
  FIELD(ts_ns);
  FIELD(conn_id);
  FIELD(prev_first_ns);
  FIELD(prev_last_ns);
  FIELD(prev_bytes);
  FIELD(pid);
  FIELD(tid);
  FIELD(seq);
  FIELD(bytes);
  FIELD(cap_len);
  FIELD(flags);
  FIELD(kind);
  FIELD(dir);
  FIELD(role);
  FIELD(family);
  FIELD(lport);
  FIELD(rport);
  FIELD(aux);
  FIELD(laddr);
  FIELD(raddr);
  FIELD(comm);
#undef FIELD

  auto consts = [&](std::initializer_list<std::pair<const char*, uint32_t>> kv) {
    Napi::Object c = Napi::Object::New(env);
    for (auto& p : kv) c.Set(p.first, Napi::Number::New(env, p.second));
    return c;
  };
  Napi::Object l = Napi::Object::New(env);
  const uint16_t probe = 1;
  l.Set("littleEndian", *reinterpret_cast<const uint8_t*>(&probe) == 1);
  l.Set("recordSize", Napi::Number::New(env, sizeof(struct espan_record)));
  l.Set("frameHeader", Napi::Number::New(env, ESPAN_FRAME_HDR));
  l.Set("frameAlign", Napi::Number::New(env, 8));
  l.Set("arenaBytes", Napi::Number::New(env, ESPAN_ARENA_BYTES));
  l.Set("maxCapture", Napi::Number::New(env, ESPAN_MAX_CAPTURE));
  l.Set("fields", fields);
  l.Set("kinds", consts({{"DATA", ESPAN_KIND_DATA},
                         {"CLOSE", ESPAN_KIND_CLOSE},
                         {"EXEC", ESPAN_KIND_EXEC},
                         {"EXIT", ESPAN_KIND_EXIT},
                         {"FORK", ESPAN_KIND_FORK}}));
  l.Set("dirs", consts({{"NONE", ESPAN_DIR_NONE}, {"SEND", ESPAN_DIR_SEND}, {"RECV", ESPAN_DIR_RECV}}));
  l.Set("roles", consts({{"UNKNOWN", ESPAN_ROLE_UNKNOWN},
                         {"CLIENT", ESPAN_ROLE_CLIENT},
                         {"SERVER", ESPAN_ROLE_SERVER}}));
  l.Set("flags", consts({{"FIN", ESPAN_F_FIN},
                         {"TRUNCATED", ESPAN_F_TRUNCATED},
                         {"NO_PAYLOAD", ESPAN_F_NO_PAYLOAD},
                         {"CONT", ESPAN_F_CONT},
                         {"FD_LOOKUP", ESPAN_F_FD_LOOKUP},
                         {"IOV", ESPAN_F_IOV}}));
  l.Set("pidFlags", consts({{"TRACE", ESPAN_PID_TRACE},
                            {"INHERIT", ESPAN_PID_INHERIT},
                            {"EXCLUDE", ESPAN_PID_EXCLUDE}}));
  l.Set("scan", ScanLayout(env));
  return l;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  Capture::Init(env);
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("layout", Napi::Function::New(env, Layout, "layout"));
  exports.Set("scanHttp", Napi::Function::New(env, ScanHttp, "scanHttp"));
  exports.Set("tuneMalloc", Napi::Function::New(env, TuneMalloc, "tuneMalloc"));
  exports.Set("gzip", Napi::Function::New(env, Gzip, "gzip"));
  exports.Set("gzipLibrary", Napi::Function::New(env, GzipLibrary, "gzipLibrary"));
  InitSpanEncoder(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(espan_capture, InitModule)
