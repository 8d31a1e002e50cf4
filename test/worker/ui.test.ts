/**
 * The web UI inside workerd: sign-in with the token (cookie), the trace list, one trace as a
 * waterfall in tree order, the service map, and what a missing trace or a bad parameter gives.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import type { Scenario } from "../scenarios.case.ts";
import chainScenario from "../../../shared/scenarios/chain-3-hop.json";
import { get, post, settle, TOKEN } from "./helpers.ts";

const chain = (chainScenario as unknown as Scenario).spans as ESpan[];

function page(path: string, headers: Record<string, string> = {}): Promise<Response> {
  return SELF.fetch(`https://espan.test${path}`, { headers, redirect: "manual" });
}

async function signIn(token: string): Promise<Response> {
  return SELF.fetch("https://espan.test/ui/login", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
    redirect: "manual",
  });
}

describe("web UI", () => {
  it("sends a browser without the token to the sign-in form; a wrong token is refused, the right one is kept in an HttpOnly cookie", async () => {
    const anonymous = await page("/ui");
    expect(anonymous.status).toBe(302);
    expect(anonymous.headers.get("location")).toBe("/ui/login");
    expect((await page("/ui/services")).status).toBe(302);

    const wrong = await signIn("nope");
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain("not this ingest&#39;s token");

    const right = await signIn(TOKEN);
    expect(right.status).toBe(303);
    expect(right.headers.get("location")).toBe("/ui");
    const cookie = right.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^espan_token=s3cret;/);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("Path=/ui");
    expect((await page("/ui", { cookie: "espan_token=s3cret" })).status).toBe(200);
    expect((await page("/", {})).headers.get("location")).toBe("/ui");
  });

  it("lists a linked trace, shows it as a waterfall in tree order, and maps its calls", async () => {
    expect((await post(JSON.stringify({ spans: chain }))).status).toBe(202);
    await settle();
    const { traces } = (await (await get("/api/traces?service=front")).json()) as { traces: { trace_id: string }[] };
    expect(traces).toHaveLength(1);
    const id = traces[0].trace_id;
    const auth = { authorization: `Bearer ${TOKEN}` };

    const list = await (await page("/ui?service=front", auth)).text();
    expect(list).toContain(`href="/ui/traces/${id}"`);

    const res = await page(`/ui/traces/${id}`, auth);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const wf = await res.text();
    // Rows in tree order: front's entry and exit, mid's entry and exit, back's entry, each deeper.
    const rows = [...wf.matchAll(/<details id="span-([0-9a-f]{16})"><summary>\s*<span class="name" style="padding-left:(\d+)px"/g)];
    expect(rows.map((m) => m[1])).toEqual(["e100000000000001", "c100000000000001", "e200000000000002", "c200000000000002", "e300000000000003"]);
    expect(rows.map((m) => Number(m[2]))).toEqual([0, 16, 32, 48, 64]);
    expect(wf).toContain("5 spans · 3 services (front, mid, back)");

    const map = await (await page("/ui/services", auth)).text();
    expect(map).toMatch(/<tr><td>front<\/td><td>mid<\/td>\s*<td class="num">1<\/td>/);
    expect(map).toMatch(/<tr><td>mid<\/td><td>back<\/td>\s*<td class="num">1<\/td>/);
  });

  it("a trace that is not stored is a 404; a bad trace id or limit is a 400 naming it", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const missing = await page(`/ui/traces/${"ab".repeat(16)}`, auth);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("no trace");
    const bad = await page("/ui/traces/xyz", auth);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("trace_id must be 32 hex digits");
    expect(await (await page("/ui?limit=0", auth)).text()).toContain("limit must be an integer");
    expect((await page("/ui/services?traces=5000", auth)).status).toBe(400);
  });
});
