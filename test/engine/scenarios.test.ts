import { DEFAULT_LINK_CONFIG } from "../../src/linker/config.ts";
import { LocalCluster } from "../../src/linker/local-cluster.ts";
import { loadEngineModule } from "../../src/linker/load-node.ts";
import { runScenarios, type Scenario } from "../scenarios.case.ts";

const module = loadEngineModule({ debug: true });

function linkWith(shards: number) {
  return (s: Scenario) => {
    const c = new LocalCluster(module, {
      ...DEFAULT_LINK_CONFIG,
      samplingRate: s.config.sampling_rate,
      useAppTraceId: s.config.use_app_trace_id,
    }, shards);
    c.ingest(s.spans, 0);
    c.flush();
    return c.drainResults();
  };
}

runScenarios("engine, 1 shard", linkWith(1));
runScenarios("engine, 64 shards", linkWith(64));
