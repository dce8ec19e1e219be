"""`tokenplan alert`: compute the plan once, derive its alerts, send them to the webhooks.

The same code the service runs after each plan refresh (`tokenplan.service.alerting`), so a
cron job and the service say the same things, deduplicated against the same state file.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tokenplan.capacity import MAX_HORIZON_HOURS, PlanSettings, make_plan
from tokenplan.cli.app import DbOption, app, console
from tokenplan.cli.output import safe
from tokenplan.errors import InvalidInput
from tokenplan.pricing import parse_fx
from tokenplan.store import open_store
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.queries import queries_for
from tokenplan.timestamps import iso_utc

# A chat webhook answers in well under a second; ten keeps a hung one from stalling cron.
HTTP_TIMEOUT_S = 10.0


@app.command()
def alert(
    alerts: Annotated[
        Path, typer.Option("--alerts", help="Alerts TOML: webhooks and rules (see the example).")
    ],
    budgets: Annotated[
        Path | None, typer.Option("--budgets", help="Budgets TOML (budget alerts).")
    ] = None,
    limits: Annotated[
        Path | None,
        typer.Option(
            "--limits", help="Limits TOML (headroom alerts); default: $TOKENPLAN_LIMITS, else none."
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Alert state file (default: the alerts file's `state`)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be sent; send and record nothing.")
    ] = False,
    horizon: Annotated[
        int, typer.Option(help="Hours the plan forecasts.", min=1, max=MAX_HORIZON_HOURS)
    ] = 168,
    currency: Annotated[
        str | None, typer.Option(help="Currency of --fx, e.g. CNY (else the budgets file's fx).")
    ] = None,
    fx: Annotated[str | None, typer.Option(help="Units of --currency per USD, e.g. 7.3.")] = None,
    db: DbOption = None,
) -> None:
    """Send the plan's budget, headroom and spike alerts to the configured webhooks.

    An ongoing condition is sent once, again when it changes or after `repeat_after`, and a
    "resolved" message when it clears. Exits 1 when a message could not be delivered.
    """
    import httpx

    from tokenplan.plan.budgets import load_budgets
    from tokenplan.plan.limits import load_limits
    from tokenplan.service.alerting import judge_plan
    from tokenplan.service.alerts_config import load_alerts, make_notifier
    from tokenplan.service.webhooks import title

    config = load_alerts(alerts, env=os.environ)
    budget_config = load_budgets(budgets) if budgets is not None else None
    chosen = limits if limits is not None else os.environ.get("TOKENPLAN_LIMITS") or None
    limit_config = load_limits(chosen) if chosen is not None else None
    rate = parse_fx(currency, fx)
    with open_store(resolve_db_path(db), mode="read") as store:
        plan = make_plan(queries_for(store), settings=PlanSettings(horizon_hours=horizon))
        if plan.empty:
            raise InvalidInput(
                f"{store.path} holds no usage yet; import some with `tokenplan import`."
            )
        judged = judge_plan(
            plan, budgets=budget_config, limits=limit_config, fx=rate, rules=config.rules
        )
    found = judged.alerts
    as_of = "—" if plan.as_of is None else iso_utc(plan.as_of)
    after = " (spikes also read the bucket still filling after it)" if plan.filled < 1 else ""
    console.print(safe(f"{len(found)} alert(s) from the plan of data up to {as_of}{after}."))
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
        notifier = make_notifier(
            config,
            client=client,
            clock=lambda: datetime.now(UTC),
            sleep=time.sleep,
            state_path=state,
        )
        if dry_run:
            due = notifier.pending(found, judged.kinds)
            for target, notice in due:
                console.print(safe(f"would send to {target.name} ({target.kind}): {title(notice)}"))
                console.print(safe(f"  {notice.alert.message}"), style="dim")
            if not due:
                console.print("nothing new to send.")
            return
        deliveries = notifier.notify(found, judged.kinds)
    for d in deliveries:
        if d.ok:
            console.print(safe(f"sent {d.status} {d.key} to {d.target}"))
        else:
            console.print(safe(f"not delivered: {d.status} {d.key}: {d.error}"), style="red")
    if not deliveries:
        console.print("nothing new to send.")
    if any(not d.ok for d in deliveries):
        raise typer.Exit(1)
