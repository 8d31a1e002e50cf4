/** One trace as GET /api/traces lists it: the store's summary row (the earliest span stands for it). */
export interface TraceSummary {
  trace_id: string;
  start_ms: number;
  root_service: string;
  root_operation: string;
  span_count: number;
  services: string[];
}
