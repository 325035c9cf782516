"""The sub-worker of the delegation example (10.1.2.5), as `guests/core`: receives a range
`{"from", "to"}`, counts the primes in `from..to` by trial division, posts the count and
closes."""

from worker_scope import Event, Worker, close, post


def is_prime(n: int) -> bool:
    """Whether `n` is prime, by trial division by 2 and the odd numbers up to its square root
    (the algorithm of `guests/prime-count`)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def count(start: int, end: int) -> int:
    """The number of primes in `start..end`."""
    return sum(1 for n in range(start, end) if is_prime(n))


class Handlers(Worker):
    def on_message(self, event: Event) -> None:
        try:
            job = event.json()
            start, end = job["from"], job["to"]
        except (ValueError, TypeError, KeyError):
            return  # not a range: ignored
        if not (isinstance(start, int) and isinstance(end, int)):
            return
        post(count(start, end))
        close()
