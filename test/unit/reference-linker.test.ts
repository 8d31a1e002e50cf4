import { DEFAULT_LINK_CONFIG } from "../../src/linker/config.ts";
import { ReferenceLinker } from "../model/reference-linker.ts";
import { runScenarios } from "../scenarios.case.ts";

runScenarios("reference model", (s) => {
  const m = new ReferenceLinker({
    ...DEFAULT_LINK_CONFIG,
    samplingRate: s.config.sampling_rate,
    useAppTraceId: s.config.use_app_trace_id,
  });
  m.add(s.spans, 0);
  m.flush();
  return m.drain();
});
