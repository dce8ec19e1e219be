"""The HTTP service: ingest, live counters, read API, Prometheus metrics, webhook alerts.

Modules (one job each):

- `contracts`: the seams between them (event sinks, the cached plan);
- `app`: the FastAPI application and its routes (ingest and reads), built by `make_app`;
- `settings` and `auth`: the service's request limits and its bearer tokens;
- `ingest`: request bodies (JSON, NDJSON, gzip) read within limits and validated to rows;
- `sinks`: where accepted events go (the DuckDB store, group-committed before the 2xx);
- `live`: the Redis path (per-minute counters, the stream a single writer drains);
- `plans`: the plan refreshed on a schedule in the background, never on a request;
- `metrics`: the Prometheus collector that reads the store and the plan at scrape time;
- `alerting` and `webhooks`: alerts from the plan, sent to Slack, Feishu, DingTalk, WeCom or
  JSON webhooks with retries and deduplication.

Nothing here computes a forecast or a budget of its own: it reads `tokenplan.capacity`.
"""
