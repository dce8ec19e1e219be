"""Which engine runs the shards: parse ``local|dask|ray|spark`` or an engine object, open it.

`open_engine` yields what fugue's ``engine=`` takes (a Dask ``Client``, ``"ray"``, a
``SparkSession`` or the object given) and closes only what it started itself: a session the
caller made (a ``Client``, a running Ray, an active Spark session) is used and left running.
Each engine is an optional extra; without it the error names the ``pip install`` to run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tokenplan.errors import EngineError, InvalidInput

# The modules each extra brings (tokenplan[dask], [ray], [spark]).
EXTRAS: dict[str, tuple[str, ...]] = {
    "dask": ("fugue_dask", "dask.distributed"),
    "ray": ("fugue_ray", "ray"),
    "spark": ("fugue_spark", "pyspark"),
}
NAMES = ("local", *EXTRAS)


@dataclass(frozen=True)
class EngineChoice:
    """A parsed ``--engine``: a name from `NAMES`, or an engine object the caller opened."""

    name: str
    target: object = None

    @property
    def local(self) -> bool:
        """True when the work stays in this process (no fugue, no engine)."""
        return self.name == "local"


def parse_engine(engine: object) -> EngineChoice:
    """``None``, ``"local"``, ``"dask"``, ``"ray"``, ``"spark"`` or an engine object."""
    if engine is None:
        return EngineChoice("local")
    if isinstance(engine, str):
        name = engine.strip().lower()
        if name not in NAMES:
            raise InvalidInput(
                f"engine {engine!r} is not one tokenplan runs on; use one of {', '.join(NAMES)}."
            )
        if name != "local":
            require_extra(name)
        return EngineChoice(name)
    return EngineChoice(_object_kind(engine), engine)


def require_extra(name: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise `InvalidInput` naming ``pip install 'tokenplan[name]'`` if a module is missing."""
    for module in modules or EXTRAS[name]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package is missing
            found = False
        if not found:
            raise InvalidInput(
                f"the {name} engine needs the {module.split('.')[0]} package, which is not "
                f"installed; run: pip install 'tokenplan[{name}]'"
            )


def _object_kind(engine: object) -> str:
    """A short name for an engine object, for notes and metadata."""
    module = type(engine).__module__.split(".")[0]
    kinds = {
        "distributed": "dask",
        "fugue_dask": "dask",
        "pyspark": "spark",
        "fugue_spark": "spark",
        "fugue_ray": "ray",
    }
    if module in kinds:
        return kinds[module]
    if module == "fugue":  # NativeExecutionEngine: in this process, for tests and debugging
        return type(engine).__name__.removesuffix("ExecutionEngine").lower() or "fugue"
    raise InvalidInput(
        f"engine {type(engine).__name__} is not one tokenplan can run on; pass "
        f"{', '.join(NAMES)}, a dask.distributed Client, a SparkSession or a fugue "
        "ExecutionEngine."
    )


@contextmanager
def open_engine(choice: EngineChoice, address: str | None = None) -> Iterator[Any]:
    """What fugue's ``engine=`` takes, started (and stopped after) unless already running."""
    if choice.target is not None:
        yield choice.target
        return
    if choice.name == "dask":
        with _dask(address) as client:
            yield client
    elif choice.name == "ray":
        with _ray(address):
            yield "ray"
    elif choice.name == "spark":
        with _spark(address) as session:
            yield session
    else:
        raise InvalidInput(f"engine {choice.name!r} has nothing to open.")


def cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _dask(address: str | None) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if address is None:
        try:
            yield Client.current()  # the caller's client: use it, leave it open
            return
        except ValueError:
            pass
    try:
        if address is not None:
            client = Client(address, timeout="20s")
            cluster = None
        else:
            # One single-threaded worker process per core: each shard's LightGBM and
            # statsforecast fits are single-threaded (threads=1), so this fills the machine.
            cluster = LocalCluster(
                n_workers=cores(),
                threads_per_worker=1,
                processes=True,
                # No dashboard; the scheduler's small HTTP server on a free port (its default
                # 8787 is also `tokenplan serve`'s port).
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            client.run(_quiet_worker)
    except (OSError, TimeoutError) as exc:
        where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
        raise EngineError(
            f"could not connect to {where}: {exc}; check --engine-address "
            "(e.g. tcp://scheduler:8786)."
        ) from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _quiet_worker() -> None:
    """Runs on each worker of a cluster we started: no deprecation notes of the libraries."""
    import warnings

    # dask's groupby-apply (fugue's partition by shard) warns of a pandas change that does
    # not touch the shard frames; the user can do nothing about it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"dask\.")


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        raise EngineError(
            f"could not start or reach {where}: {exc}; check --engine-address "
            "(e.g. ray://head:10001 or auto)."
        ) from exc
    _quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """No progress bars or per-dataset INFO lines from Ray Data on the user's terminal."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def spark_session(master: str | None = None) -> Any:
    """A Spark session for the shards: UTC, no UI, the worker Python = this Python."""
    from pyspark.sql import SparkSession

    # Spark starts its Python workers with PYSPARK_PYTHON (default: python3 on the PATH,
    # which may lack pandas); this interpreter has everything the shards import.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master or "local[*]")
        .appName("tokenplan")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


@contextmanager
def _spark(address: str | None) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # the caller's session (getOrCreate would return it anyway)
        yield active
        return
    try:
        session = spark_session(address)
    except Exception as exc:  # py4j and JVM start-up errors have no common base
        where = f"the Spark master {address}" if address else "a local Spark session"
        raise EngineError(
            f"could not start {where}: {exc}; check --engine-address (e.g. spark://host:7077) "
            "and that Java 17+ is installed (java -version)."
        ) from exc
    try:
        yield session
    finally:
        session.stop()
