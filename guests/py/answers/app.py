"""Answers each message with what it saw, for the tests of message errors: `{"data": ...}` for
a message it could read, `{"messageerror": why}` for one that could not be deserialized."""

from worker_scope import Event, Worker, post


class Handlers(Worker):
    def on_message(self, event: Event) -> None:
        if event.error is not None:
            post({"messageerror": event.error})
        else:
            post({"data": event.json()})
