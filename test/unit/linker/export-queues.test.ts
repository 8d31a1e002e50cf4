import { describe, expect, it } from "vitest";
import { ExportQueues } from "../../../src/linker/export-queues.ts";

const item = (store: number, id: number) => ({ store, id });

describe("export queues, one per trace store shard", () => {
  it("a step takes from the longest queue only, in order; a failed step goes back to the front", () => {
    const q = new ExportQueues<{ store: number; id: number }>(3);
    for (let i = 0; i < 5; i++) q.push(item(1, i));
    for (let i = 0; i < 3; i++) q.push(item(2, 10 + i));
    q.push(item(0, 20));
    expect(q.length).toBe(9);
    expect(q.longest).toBe(5);
    const step = q.take(4);
    expect(step.map((x) => x.id)).toEqual([0, 1, 2, 3]);
    expect(q.length).toBe(5);
    expect(q.longest).toBe(3); // store 2 now
    q.putBack(step);
    expect(q.length).toBe(9);
    expect(q.take(10).map((x) => x.id)).toEqual([0, 1, 2, 3, 4]);
    expect(q.take(10).map((x) => x.id)).toEqual([10, 11, 12]);
    expect(q.take(10).map((x) => x.id)).toEqual([20]);
    expect(q.take(10)).toEqual([]);
    expect(q.length).toBe(0);
    q.putBack([]);
    expect(q.length).toBe(0);
  });
});
