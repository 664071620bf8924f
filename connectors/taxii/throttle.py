"""Failed TAXII logins, counted per client: a password guesser is slowed, and cannot make the
server burn one scrypt (tens of ms, 32 MiB) per request for ever.

After `max_failures` failed checks within `window` seconds, a client is answered 429
with Retry-After, without a password check, until the oldest of those failures is
`window` seconds old. A success clears the client's count. Clients are told apart by
address; at most `max_clients` are tracked (the least recently failing is forgotten).
"""

from __future__ import annotations

from collections import OrderedDict, deque


class LoginThrottle:
    def __init__(
        self, *, max_failures: int = 5, window: float = 60.0, max_clients: int = 10_000
    ) -> None:
        if max_failures < 1 or window <= 0 or max_clients < 1:
            raise ValueError("max_failures, window and max_clients must be positive")
        self._max = max_failures
        self._window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, client: str, now: float) -> float:
        """Seconds until `client` may try again (0: it may now)."""
        times = self._failures.get(client)
        if times is None:
            return 0.0
        while times and now - times[0] >= self._window:
            times.popleft()
        if not times:
            del self._failures[client]
            return 0.0
        return self._window - (now - times[0]) if len(times) >= self._max else 0.0

    def failed(self, client: str, now: float) -> None:
        times = self._failures.pop(client, None)
        if times is None:
            times = deque(maxlen=self._max)
            if len(self._failures) >= self._max_clients:
                self._failures.popitem(last=False)
        times.append(now)
        self._failures[client] = times  # most recently failing last

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
