import { describe, expect, it } from "vitest";
import { buildProgram, parseCommandLine } from "../../../agent/src/cli.ts";
import { ConfigError, DEFAULTS, ingestUrl, loadConfig, type LoadOptions } from "../../../agent/src/config.ts";

const files = (text: string) => ({ configPath: "agent.toml", readFile: () => text });
const SELECT = { ENV_INPUT_EBPF_TRACE_NAME_LIST: "app" };

function problems(opts: LoadOptions): string[] {
  try {
    loadConfig(opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

const cli = (...args: string[]) => parseCommandLine(["node", "espan-agent", ...args], buildProgram().exitOverride()).load;

describe("config sources: defaults < TOML < environment < flags", () => {
  it("reads the seed's [[inputs.ebpf]] table", () => {
    const { config } = loadConfig(files(`
[[inputs.ebpf]]
  enabled_plugins = ["ebpf-net", "ebpf-trace"]
  trace_server = "10.0.0.5:9529"
  trace_env_list = ["DK_BPFTRACE_SERVICE", "OTEL_SERVICE_NAME"]
  trace_name_blacklist = ["sshd"]
  token = "t0k"
  capture_bytes = 2048
  flush_interval = "500ms"
  spool_dir = "/tmp/s"
`));
    expect(config.trace_server).toBe("http://10.0.0.5:9529");
    expect(ingestUrl(config)).toBe("http://10.0.0.5:9529/v1/bpftracing");
    expect(config.trace_env_list).toEqual(["DK_BPFTRACE_SERVICE", "OTEL_SERVICE_NAME"]);
    expect(config.trace_name_blacklist).toEqual(["sshd"]);
    expect(config.capture_bytes).toBe(2048);
    expect(config.flush_interval).toBe(500);
    expect(config.batch_size).toBe(DEFAULTS.batch_size);
    expect(config.host_name.length).toBeGreaterThan(0); // os.hostname()
  });

  it("environment wins over the file, flags over the environment", () => {
    const toml = '[[inputs.ebpf]]\ntrace_server = "file:1"\ntrace_name_list = ["a"]\ncapture_bytes = 100\n';
    const env = {
      ENV_INPUT_EBPF_TRACE_SERVER: "env:2",
      ENV_INPUT_EBPF_TRACE_NAME_LIST: "b, c,,",
      ENV_INPUT_EBPF_TRACE_ALL_PROCESS: "true",
      ENV_INPUT_EBPF_TOKEN: "envtoken",
      ENV_INPUT_EBPF_HOST_NAME: "h1",
      ENV_INPUT_EBPF_CAPTURE_BYTES: "1024",
      ENV_INPUT_EBPF_TRACE_ENV_BLACKLIST: "NO_TRACE",
    };
    const fromEnv = loadConfig({ ...files(toml), env }).config;
    expect(fromEnv).toMatchObject({
      trace_server: "http://env:2", trace_name_list: ["b", "c"], trace_all_process: true, token: "envtoken",
      host_name: "h1", capture_bytes: 1024, trace_env_blacklist: ["NO_TRACE"],
    });
    const fromFlags = loadConfig({
      ...files(toml), env,
      flags: cli("--trace-server", "https://flag:3/", "--capture-bytes", "4096", "--no-trace-all-process", "--trace-name-list", "d").flags,
    }).config;
    expect(fromFlags).toMatchObject({ trace_server: "https://flag:3", capture_bytes: 4096, trace_all_process: false, trace_name_list: ["d"], token: "envtoken" });
  });

  it("maps every flag; an absent flag leaves the lower sources alone", () => {
    const load = cli(
      "--trace-server", "h:1", "--token", "t", "--config", "x.toml", "--trace-all-process", "--trace-name-list", "a,b",
      "--trace-env-list", "E", "--trace-name-blacklist", "n", "--trace-env-blacklist", "F", "--host-name", "hn",
      "--capture-bytes", "512", "--stdout", "--spool-dir", "", "--batch-size", "10", "--flush-interval", "2s",
    );
    expect(load.configPath).toBe("x.toml");
    expect(load.flags).toEqual({
      trace_server: "h:1", token: "t", trace_all_process: true, trace_name_list: "a,b", trace_env_list: "E",
      trace_name_blacklist: "n", trace_env_blacklist: "F", host_name: "hn", capture_bytes: "512", stdout: true,
      spool_dir: "", batch_size: "10", flush_interval: "2s",
    });
    expect(cli("--stdout").flags).toEqual({ stdout: true });
    const c = loadConfig({ flags: load.flags }).config;
    expect(c).toMatchObject({ spool_dir: "", batch_size: 10, flush_interval: 2000, capture_bytes: 512 });
  });

  it("keeps a full URL ending in /v1/bpftracing as it is", () => {
    const { config } = loadConfig({ env: { ...SELECT, ENV_INPUT_EBPF_TRACE_SERVER: "http://x:1/v1/bpftracing" } });
    expect(ingestUrl(config)).toBe("http://x:1/v1/bpftracing");
  });
});

describe("validation errors name the key and its source", () => {
  it("bad values from each source", () => {
    expect(problems({ env: { ...SELECT, ENV_INPUT_EBPF_CAPTURE_BYTES: "9000" } })).toEqual([
      "capture_bytes (from ENV_INPUT_EBPF_CAPTURE_BYTES): must be ≤ 4096, got 9000",
    ]);
    expect(problems({ env: { ...SELECT, ENV_INPUT_EBPF_TRACE_ALL_PROCESS: "maybe" } })[0]).toMatch(/^trace_all_process \(from ENV_INPUT_EBPF_TRACE_ALL_PROCESS\): must be true or false/);
    expect(problems({ env: SELECT, flags: { batch_size: "0" } })[0]).toMatch(/^batch_size \(from --batch-size\): must be ≥ 1/);
    expect(problems({ env: SELECT, flags: { flush_interval: "soon" } })[0]).toMatch(/^flush_interval \(from --flush-interval\): must be a duration/);
    expect(problems({ ...files('[[inputs.ebpf]]\ntrace_name_list = "a"\ncapture_bytes = "lots"\n') })[0]).toMatch(
      /^capture_bytes \(from agent.toml: inputs.ebpf.capture_bytes\): must be an integer/,
    );
  });

  it("unknown keys in the file are errors; the seed's unused keys are warnings", () => {
    expect(problems(files('[[inputs.ebpf]]\ntrace_name_list = ["a"]\ntrace_servr = "x"\n'))).toEqual(["agent.toml: inputs.ebpf.trace_servr: unknown key"]);
    const { warnings } = loadConfig(files('[[inputs.ebpf]]\ntrace_name_list = ["a"]\nl7net_enabled = ["httpflow"]\n'));
    expect(warnings).toEqual(["agent.toml: inputs.ebpf.l7net_enabled is a seed option espan does not use; ignored"]);
  });

  it("a file without the table, or that is not TOML", () => {
    expect(problems({ ...files("[other]\nx = 1\n"), env: SELECT })).toEqual(["agent.toml: no [[inputs.ebpf]] table"]);
    expect(problems(files("[[inputs.ebpf]\n"))[0]).toMatch(/^agent.toml: /);
  });

  it("nothing selected, a bad server URL, an env list entry that is not a name", () => {
    expect(problems({})[0]).toMatch(/^trace_all_process \/ trace_name_list \/ trace_env_list: nothing would be traced/);
    expect(problems({ env: { ...SELECT, ENV_INPUT_EBPF_TRACE_SERVER: "ftp://x" } })).toEqual(["trace_server: must be http:// or https://, got ftp:"]);
    expect(problems({ env: { ENV_INPUT_EBPF_TRACE_ENV_LIST: "A=1" } })).toEqual(['trace_env_list: "A=1" is not an environment variable name']);
  });

  it("reports every problem at once", () => {
    expect(problems({ env: { ENV_INPUT_EBPF_BATCH_SIZE: "x", ENV_INPUT_EBPF_CAPTURE_BYTES: "-1" } })).toHaveLength(3);
  });

  it("warns when the capture is too small for traceparent after a long header", () => {
    expect(loadConfig({ env: { ...SELECT, ENV_INPUT_EBPF_CAPTURE_BYTES: "256" } }).warnings[0]).toMatch(/capture_bytes = 256/);
  });
});
