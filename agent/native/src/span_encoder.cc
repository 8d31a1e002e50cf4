// SPDX-License-Identifier: Apache-2.0
/*
 * new SpanEncoder(stage: Float64Array, positions: Uint32Array): the N-API side of span_json.c
 * for one JS writer (agent/src/ship/span-json.ts). The writer stages spans as numbers in
 * `stage` and has them written by one encode() call for up to a stage-full: a call per span
 * cost ~140 ns of N-API and V8 entry alone, and ~400 ns more with the ids passed as strings.
 * It keeps a copy of every run of fields the writer remembered (setRun); the writer encodes
 * what it staged before it replaces a run.
 */
#include "span_encoder.h"

#include <string>
#include <vector>

extern "C" {
#include "span_json.h"
}

namespace {

// A staged span's slots; agent/src/ship/span-json.ts (Staged) writes them in this order.
enum Slot {
  kFlags, kIdHi, kIdLo, kStartHi, kStartLo, kThreadHi, kThreadLo, kReqSeq, kRespSeq, kDuration,
  kEndpointRun, kHttpRun, kBytesRead, kBytesWritten, kSrcPort, kDstPort, kStride = 16
};
enum Flag { kComma = 1, kExit = 2, kThread = 4, kRead = 8, kWritten = 16, kTcp = 32 };
// Runs: endpoint runs at [0, kRuns), http runs at [kRuns, 2 * kRuns) (span-json.ts RUN_SLOTS).
constexpr uint32_t kRuns = 1024;

// A 32-bit word JS stored as a number (the writer stores only such).
uint32_t Word(double v) { return static_cast<uint32_t>(v); }

class SpanEncoder : public Napi::ObjectWrap<SpanEncoder> {
 public:
  static Napi::Function Class(Napi::Env env) {
    return DefineClass(env, "SpanEncoder",
                       {InstanceMethod("setRun", &SpanEncoder::SetRun),
                        InstanceMethod("encode", &SpanEncoder::Encode)});
  }

  explicit SpanEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SpanEncoder>(info), runs_(2 * kRuns) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      throw Napi::TypeError::New(env, "SpanEncoder(stage: Float64Array, positions: Uint32Array)");
    }
    auto stage = info[0].As<Napi::Float64Array>();
    auto positions = info[1].As<Napi::Uint32Array>();
    capacity_ = stage.ElementLength() / kStride;
    if (positions.ElementLength() < 2 * capacity_) throw Napi::RangeError::New(env, "SpanEncoder: 2 positions a staged span");
    stage_ = Napi::Persistent(stage);
    positions_ = Napi::Persistent(positions);
    slots_ = stage.Data();
    pos_ = positions.Data();
  }

 private:
  // setRun(index, bytes): the bytes of run `index` (a copy: JS may reuse its array).
  void SetRun(const Napi::CallbackInfo& info) {
    uint32_t i = info[0].As<Napi::Number>().Uint32Value();
    if (i >= runs_.size() || !info[1].IsTypedArray()) throw Napi::RangeError::New(info.Env(), "setRun(index, bytes)");
    auto b = info[1].As<Napi::Uint8Array>();
    runs_[i].assign(reinterpret_cast<const char*>(b.Data()), b.ByteLength());
  }

  // encode(buf, at, count): the first `count` staged spans, each after a comma when its flags
  // say so, into buf from `at`; positions[2i], positions[2i + 1]: where span i starts and
  // ends. Returns the offset after the last. Throws when a span does not fit or a number is
  // not an integer in [0, 2^53) (the writer checks both first: a bug).
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "encode(buf, at, count)");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    double at = info[1].As<Napi::Number>().DoubleValue();
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    if (!(at >= 0 && at <= static_cast<double>(b.Length())) || count > capacity_) {
      throw Napi::RangeError::New(env, "encode: offset or count out of range");
    }
    uint8_t* p = b.Data() + static_cast<size_t>(at);
    const uint8_t* end = b.Data() + b.Length();
    for (uint32_t i = 0; i < count; i++) {
      const double* s = slots_ + static_cast<size_t>(i) * kStride;
      uint32_t flags = Word(s[kFlags]);
      uint32_t e = Word(s[kEndpointRun]), h = Word(s[kHttpRun]);
      if (e >= kRuns || h >= kRuns) throw Napi::RangeError::New(env, "encode: run index");
      if (flags & kComma) {
        if (p == end) throw Napi::RangeError::New(env, "encode: buffer full");
        *p++ = ',';
      }
      const std::string& ep = runs_[e];
      const std::string& hr = runs_[kRuns + h];
      espan_span_numbers n{};
      n.id_hi = Word(s[kIdHi]);
      n.id_lo = Word(s[kIdLo]);
      n.exit = (flags & kExit) != 0;
      n.req_seq = s[kReqSeq];
      n.resp_seq = s[kRespSeq];
      n.start_ns = (static_cast<uint64_t>(Word(s[kStartHi])) << 32) | Word(s[kStartLo]);
      n.duration_ns = s[kDuration];
      n.endpoint_run = reinterpret_cast<const uint8_t*>(ep.data());
      n.endpoint_len = ep.size();
      n.src_port = s[kSrcPort];
      n.dst_port = s[kDstPort];
      n.tcp = (flags & kTcp) != 0;
      n.has_thread = (flags & kThread) != 0;
      n.thread_hi = Word(s[kThreadHi]);
      n.thread_lo = Word(s[kThreadLo]);
      n.http_run = reinterpret_cast<const uint8_t*>(hr.data());
      n.http_len = hr.size();
      n.has_bytes_read = (flags & kRead) != 0;
      n.bytes_read = s[kBytesRead];
      n.has_bytes_written = (flags & kWritten) != 0;
      n.bytes_written = s[kBytesWritten];
      pos_[2 * i] = static_cast<uint32_t>(p - b.Data());
      long len = espan_span_json(p, end, &n);
      if (len < 0) throw Napi::RangeError::New(env, "encode: a staged span does not fit or has a bad number");
      p += len;
      pos_[2 * i + 1] = static_cast<uint32_t>(p - b.Data());
    }
    return Napi::Number::New(env, static_cast<double>(p - b.Data()));
  }

  Napi::Reference<Napi::Float64Array> stage_;
  Napi::Reference<Napi::Uint32Array> positions_;
  double* slots_ = nullptr;
  uint32_t* pos_ = nullptr;
  size_t capacity_ = 0;
  std::vector<std::string> runs_;
};

}  // namespace

void InitSpanEncoder(Napi::Env env, Napi::Object exports) {
  exports.Set("SpanEncoder", SpanEncoder::Class(env));
}
