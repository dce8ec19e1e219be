"""SDK instrumentation: usage events from the openai and anthropic Python clients."""

from tokenplan.collect.sdk.batcher import BatcherStats, EventBatcher
from tokenplan.collect.sdk.instrument import instrument, key_fingerprint, recorder_of
from tokenplan.collect.sdk.recorder import Recorder
from tokenplan.collect.sdk.sinks import CollectorSink, Sink, StoreSink, event_to_json
from tokenplan.collect.sdk.spool import Spool

__all__ = [
    "BatcherStats",
    "CollectorSink",
    "EventBatcher",
    "Recorder",
    "Sink",
    "Spool",
    "StoreSink",
    "event_to_json",
    "instrument",
    "key_fingerprint",
    "recorder_of",
]
