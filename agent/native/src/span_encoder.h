// SPDX-License-Identifier: Apache-2.0
// The SpanEncoder class of the addon (span_encoder.cc): exports.SpanEncoder.
#ifndef ESPAN_SPAN_ENCODER_H
#define ESPAN_SPAN_ENCODER_H

#include <napi.h>

void InitSpanEncoder(Napi::Env env, Napi::Object exports);

#endif
