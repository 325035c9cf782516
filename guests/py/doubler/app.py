"""Answers each JSON number from the parent with the number doubled."""

from worker_scope import Event, Worker, post


class Handlers(Worker):
    def on_message(self, event: Event) -> None:
        try:
            value = event.json()
        except ValueError:
            return  # not JSON: ignored
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            post(value * 2)
