#!/usr/bin/env -S node --min-semi-space-size=16
// V8's young generation is held at 16 MiB a semi-space (32 MiB in all; the agent's RSS ~20 MiB
// more). Left to itself, V8 shrinks it to ~4 MiB at a few thousand spans/s and scavenges
// more often per span: the agent's CPU per span was ~15% higher on the heavier server of
// `npm run bench:agent`, which runs the agent with these same flags (read from this line).
// `node bin/espan-agent.js` runs without them.
import "../dist/espan-agent.js";
