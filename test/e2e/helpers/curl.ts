// curl as a traced client: gated (see process.ts) so it is in the pid filter before connecting.
// Several URLs in one invocation reuse one keep-alive connection.
import { spawnGated, type Gated } from "./process.ts";

export function curlGated(urls: string[], extraArgs: string[] = [], env?: Record<string, string>): Gated {
  const args = ["-sS", "--max-time", "15", "-w", "%{http_code}\\n", ...extraArgs];
  for (const u of urls) args.push("-o", "/dev/null", u);
  return spawnGated("curl", args, env);
}

/** Releases a gated curl and waits for it; throws unless every response was a 200. */
export async function finishCurl(g: Gated, expected: number): Promise<void> {
  g.release();
  const r = await g.exited;
  const codes = r.stdout.trim().split(/\s+/).filter(Boolean);
  if (r.code !== 0 || codes.length !== expected || codes.some((c) => c !== "200")) {
    throw new Error(`curl exited ${r.code}, statuses [${codes.join(",")}], stderr: ${r.stderr}`);
  }
}
