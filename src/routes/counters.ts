/** The worker's own counters (per isolate: locally, one process holds them all). */
export const workerCounters = {
  requests: 0,
  received: 0,
  accepted: 0,
  rejected: 0,
  throttled: 0,
};
