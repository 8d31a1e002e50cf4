/** Hono's typing for this app: the bindings and the validated config in the context. */
import type { WorkerConfig } from "../config.ts";
import type { Env } from "../env.ts";

export interface AppEnv {
  Bindings: Env;
  Variables: { config: WorkerConfig };
}
