"""The HTTP service: ingest, live counters, read API, Prometheus metrics, webhook alerts.

Modules (one job each):

- `contracts`: the seams between them (event sinks, the cached plan);
- `app`: the FastAPI application and its routes (ingest and reads), built by `make_app`;
- `live`: the Redis path's sink (one atomic script per batch: dedupe, stream, counters), with
  `live_batches` (Arrow payload, counter increments), `live_keys` (key layout, escaping),
  `live_counters` (per-minute and daily reads) and `redis_connection` (connect, redact URLs);
- `drain`: the single writer that moves the Redis stream into DuckDB exactly once;
- `settings` and `auth`: the service's request limits and its bearer tokens;
- `ingest`: request bodies (JSON, NDJSON, gzip) read within limits and validated to rows;
- `sinks`: where accepted events go (the DuckDB store, group-committed before the 2xx);
- `plans`: the plan refreshed on a schedule in the background, never on a request;
- `metrics`: the Prometheus collector that reads the store and the plan at scrape time;
- `readings`: the plan's figures ``/metrics`` shows, read once per plan, off the scrape path;
- `alerting`: the alerts a plan raises (budgets, headroom, spikes), each with a stable key, and
  `AlertLoop`, which the plan refresher calls after each refresh;
- `webhooks`: payload formats and signing for Slack, Feishu / Lark, DingTalk, WeCom and JSON;
- `notifier`: sends with retries, deduplicates, repeats and resolves (`Notifier`);
- `alert_state`: what each webhook was last told, a JSON file written atomically;
- `alerts_config`: the alerts TOML (webhooks, rules), with secrets from the environment.

Nothing here computes a forecast or a budget of its own: it reads `tokenplan.capacity`.
"""
