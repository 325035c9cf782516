"""The worker scope for Python guests of wasm-workers: the `worker` world of `wit/worker.wit`,
made Pythonic.

A guest's `app` module defines `class Handlers(Worker)` (componentize-py looks the exported
interface `handlers` up as `app.Handlers`) and overrides what it needs: `on_message` for each
message event, and the other handlers of the world, which do nothing by default.
"""

import json
import struct
import traceback
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

from wit_world import exports
from wit_world.imports import scope
from wit_world.imports.types import (
    Codec,
    ErrorEvent,
    Message,
    MessageBurst,
    MessagePort,
    Source,
    Source_Child,
    Source_Parent,
    Source_Port,
    Transferable,
)

__all__ = ["Codec", "Event", "Worker", "close", "events", "post", "report"]

# Little-endian words per event's header in `message-burst.events`, after the events' bytes:
# source case, source id, codec case, data length, transfer count. The number of events is
# the list's last word.
_HEADER = struct.Struct("<5I")
_COUNT = struct.Struct("<I")

# Whether this worker called `close()`: the events after it in a burst are discarded.
_closing = False


@dataclass
class Event:
    """One message event of a burst (a `MessageEvent`, or a `messageerror` if `error` is set)."""

    source: Source
    codec: Codec
    data: bytes
    transfer: List[Transferable]
    error: Optional[str] = None

    def json(self) -> Any:
        """The data decoded as JSON; raises `ValueError` if it is not JSON."""
        if self.codec is not Codec.JSON:
            raise ValueError(f"a {self.codec.name} message, not JSON")
        return json.loads(self.data)


def _source(case: int, id: int) -> Source:
    if case == 0:
        return Source_Parent()
    if case == 1:
        return Source_Child(id)
    return Source_Port(id)


def _count(burst: MessageBurst) -> int:
    """How many events `burst` holds (0 for a list too short for its count, which a host
    never sends)."""
    data = burst.events
    if len(data) < _COUNT.size:
        return 0
    (total,) = _COUNT.unpack_from(data, len(data) - _COUNT.size)
    return total if total * _HEADER.size + _COUNT.size <= len(data) else 0


def events(burst: MessageBurst) -> Iterator[Event]:
    """The events of `burst`, in order."""
    # The two lists that are almost always empty come as None rather than empty.
    errors = dict(burst.errors or ())
    data, transfer = burst.events, burst.transfer or []
    total = _count(burst)
    start = len(data) - _COUNT.size - total * _HEADER.size
    at = taken = 0
    for i in range(total):
        case, id, codec, length, count = _HEADER.unpack_from(data, start + i * _HEADER.size)
        yield Event(
            _source(case, id),
            Codec(codec),
            data[min(at, start) : min(at + length, start)],
            transfer[taken : taken + count],
            errors.get(i),
        )
        at += length
        taken += count


def post(value: Any) -> None:
    """Posts `value` to the parent as JSON (`postMessage`); raises `Err(PostError)` if refused."""
    scope.post_message(Message(Codec.JSON, json.dumps(value).encode(), []))


def close() -> None:
    """Closes this worker (`close()`): the rest of the burst, and every later task, is discarded."""
    global _closing
    _closing = True
    scope.close()


def report(error: BaseException) -> None:
    """Describes `error` to the host (`report-error`), for the `error-event` the parent gets
    when the exception is raised out of a handler (which traps)."""
    frames = traceback.extract_tb(error.__traceback__)
    line = (frames[-1].lineno or 0) if frames else 0
    scope.report_error(f"{type(error).__name__}: {error}", line, 0)


class Worker(exports.Handlers):
    """The event handlers of a worker, with a burst taken apart into its events."""

    def on_message(self, event: Event) -> None:
        """A message event; messages that cannot be decoded (`event.error`) come here too."""

    def on_messages(self, burst: MessageBurst) -> int:
        handled = 0
        for event in events(burst):
            if _closing:
                break
            try:
                self.on_message(event)
            except BaseException as error:
                report(error)
                raise
            handled += 1
        return _count(burst) - handled

    def on_start(self) -> None:
        pass

    def on_error(self, source: Source, error: ErrorEvent) -> None:
        pass

    def on_close(self, source: Source) -> None:
        pass

    def on_connect(self, port: MessagePort) -> None:
        pass

    def on_timeout(self, id: int) -> None:
        pass
