import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// One vitest run, several projects: plain Node unit tests and the WASM engine; the ingest worker
// inside workerd (vitest-pool-workers); and end-to-end tests on the real kernel (root, BPF) and
// against `workerd serve`, which must not run in parallel with each other.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "test/engine/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            main: "./src/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ESPAN_SHARDS: "3",
                ESPAN_STORE_SHARDS: "2",
                ESPAN_TOKEN: "s3cret",
                ESPAN_MAX_BODY: "65536",
                ENV_INPUT_EBPFTRACE_WINDOW: "1s",
                ENV_INPUT_EBPFTRACE_SAMPLING_RATE: "1",
                ESPAN_SETTLE: "100ms",
              },
            },
          }),
        ],
        test: { name: "worker", include: ["test/worker/**/*.test.ts"], testTimeout: 60_000 },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
