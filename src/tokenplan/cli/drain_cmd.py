"""`tokenplan drain --redis URL`: move the Redis live path's stream into the store, exactly once.

``TOKENPLAN_TEST_KILL_AFTER_COMMIT=1`` is for the tests only: the process SIGKILLs itself right
after its first DuckDB commit, before acknowledging, to prove a restart counts nothing twice.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Annotated

import typer

from tokenplan.cli.app import AdoptOption, DbOption, app, console
from tokenplan.service.drain import DEFAULT_GROUP, MIN_IDLE_MS, Drainer
from tokenplan.service.live_keys import DEAD_LETTERS, STREAM
from tokenplan.service.redis_connection import connect, redact
from tokenplan.store.duckdb_store import resolve_db_path
from tokenplan.store.files import refuse_lake
from tokenplan.store.turns import StoreInTurns

KILL_AFTER_COMMIT = "TOKENPLAN_TEST_KILL_AFTER_COMMIT"


@app.command()
def drain(
    redis_url: Annotated[
        str,
        typer.Option(
            "--redis",
            envvar="TOKENPLAN_REDIS_URL",
            help="Redis URL, e.g. redis://127.0.0.1:6379/0 (or $TOKENPLAN_REDIS_URL).",
            show_default=False,
        ),
    ],
    db: DbOption = None,
    group: Annotated[str, typer.Option(help="Consumer group of the drainers.")] = DEFAULT_GROUP,
    consumer: Annotated[
        str | None,
        typer.Option(help="This drainer's name in the group (default: the host name)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is there now, then exit.")
    ] = False,
    min_idle: Annotated[
        float,
        typer.Option(help="Seconds before another consumer's unacknowledged entries are taken."),
    ] = MIN_IDLE_MS / 1000,
    adopt: AdoptOption = False,
) -> None:
    """Move events from the Redis stream into the store, exactly once (one writer per store).

    The store is held only while writing, so other commands can read it meanwhile.
    """
    refuse_lake(resolve_db_path(db))  # before Redis: a read-only source fails at once
    client = connect(redis_url)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the batch in hand (commit, acknowledge), then leave

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        # Holding the file only to write leaves it open to `tokenplan report` and the rest.
        with StoreInTurns(resolve_db_path(db), adopt=adopt, stop=stop) as store:
            drainer = Drainer(
                client,
                store,
                consumer=consumer or socket.gethostname(),
                group=group,
                stream=STREAM,
                min_idle_ms=int(min_idle * 1000),
                on_commit=_kill_hook(),
                on_idle=store.release,
                where=redact(redis_url),
            )
            stats = drainer.run(once=once, stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.close()
    dead = f", {stats.dead_letters:,} unreadable (kept in {DEAD_LETTERS})"
    console.print(
        f"drained {stats.entries:,} stream entries: {stats.inserted:,} new rows, "
        f"{stats.duplicates:,} already stored{dead if stats.dead_letters else ''}",
        highlight=False,
    )


def _kill_hook() -> Callable[[Sequence[bytes]], None] | None:
    if os.environ.get(KILL_AFTER_COMMIT) != "1":
        return None

    def kill(ids: Sequence[bytes]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    return kill
