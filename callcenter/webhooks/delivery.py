"""POSTing one hook's events, oldest first, one at a time (so in order per call).

A 2xx answer delivers the event; any other 4xx but 408/429 refuses it for
good (logged, never retried: the same body would be refused again); 5xx,
3xx, 408, 429, a timeout or a connection error is retried after
``retry_initial × 2ⁿ`` seconds, at most ``retry_max``, times a random factor
in ``[1 - jitter, 1 + jitter]`` so that many services do not retry in step.
Retries go on until the event is delivered or the full queue drops it.

``HookSender`` takes the clock and the ``post`` function (``TreqPoster.post``
in the service, a fake in tests); it holds no state but the queue's head.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from callcenter.logthrottle import LogThrottle
from callcenter.webhooks.config import safe_url
from callcenter.webhooks.events import SIGNATURE_HEADER, sign
from callcenter.webhooks.outbox import Entry, HookQueue, Outbox

log = Logger()

#: Bytes of a receiver's answer body read (and thrown away) at most.
MAX_ANSWER = 64 * 1024
USER_AGENT = b"callcenter-webhooks/1"

#: ``post(url, body, headers, timeout)`` → Deferred firing with the HTTP status code.
Post = Callable[[str, bytes, dict[bytes, list[bytes]], float], defer.Deferred]

IDLE, SENDING, WAITING, STOPPED = "idle", "sending", "waiting", "stopped"


def retryable(code: int) -> bool:
    return not (200 <= code < 300) and not (400 <= code < 500 and code not in (408, 429))


class HookSender:
    """Delivers one hook's queue: ``IDLE`` → ``SENDING`` → (``WAITING`` →
    ``SENDING``)* → ``IDLE``; ``STOPPED`` after ``stop``."""

    def __init__(
        self,
        clock: Any,
        queue: HookQueue,
        outbox: Outbox,
        post: Post,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.clock = clock
        self.queue = queue
        self.hook = queue.hook
        self.outbox = outbox
        self._post = post
        self._rng = rng
        self.state = IDLE
        self.failures = 0  # consecutive failed tries of the head event
        self._timer: IDelayedCall | None = None
        self._kick: IDelayedCall | None = None
        self._inflight: defer.Deferred | None = None
        self._failing_since: float | None = None
        self._throttle = LogThrottle(log, clock)
        # For tests and diagnostics.
        self.delivered = 0
        self.refused = 0
        self.attempts = 0
        self.retries = 0

    def wake(self) -> None:
        """New events: start sending on the next reactor turn (after the store
        has sent the transaction that holds them)."""
        if self.state == IDLE and self._kick is None:
            self._kick = self.clock.callLater(0, self._send_head)

    def stop(self) -> defer.Deferred:
        self.state = STOPPED
        for timer in (self._timer, self._kick):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._kick = None
        d, self._inflight = self._inflight, None
        if d is not None:
            d.cancel()  # the event stays queued (and in Redis) for the next start
        return defer.succeed(None)

    def next_delay(self) -> float:
        delay = min(self.hook.retry_max, self.hook.retry_initial * 2 ** min(self.failures - 1, 62))
        if self.hook.jitter:
            delay *= self._rng(1 - self.hook.jitter, 1 + self.hook.jitter)
        return delay

    # ------------------------------------------------------------ the loop

    def _send_head(self) -> None:
        self._kick = self._timer = None
        if self.state == STOPPED:
            return
        entry = self.queue.head()
        if entry is None:
            self.state = IDLE
            return
        self.state = SENDING
        self.attempts += 1
        headers = {
            b"Content-Type": [b"application/json"],
            b"User-Agent": [USER_AGENT],
            SIGNATURE_HEADER.encode(): [sign(entry.body, self.hook.secret).encode()],
            b"X-Callcenter-Event-Id": [entry.id.encode()],
        }
        d = defer.maybeDeferred(self._post, self.hook.url, entry.body, headers, self.hook.timeout)
        self._inflight = d
        d.addCallbacks(self._answered, self._failed, callbackArgs=(entry, d), errbackArgs=(entry, d))

    def _answered(self, code: int, entry: Entry, d: defer.Deferred) -> None:
        if self._inflight is not d:
            return
        self._inflight = None
        if not retryable(code):
            if 200 <= code < 300:
                self.delivered += 1
                self._recovered()
            else:
                self.refused += 1
                self._throttle.error(
                    "webhook-refused:" + self.hook.name,
                    "webhook {name} ({url}) refused event {id} with HTTP {code}; not retried",
                    name=self.hook.name, url=safe_url(self.hook.url), id=entry.id, code=code,
                )
            self.failures = 0
            self.outbox.delivered(self.queue, entry)
            self._send_head()
            return
        self._retry(f"HTTP {code}")

    def _failed(self, failure: Any, entry: Entry, d: defer.Deferred) -> None:
        if self._inflight is not d:
            return
        self._inflight = None
        if self.state == STOPPED:
            return
        err = failure.value
        self._retry(type(err).__name__ + (f": {err}" if str(err) else ""))

    def _retry(self, why: str) -> None:
        if self.state == STOPPED:
            return
        self.failures += 1
        self.retries += 1
        delay = self.next_delay()
        if self._failing_since is None:
            self._failing_since = self.clock.seconds()
            log.warn(
                "webhook {name} ({url}): delivery failed ({why}); retrying with backoff, "
                "{n} event(s) waiting",
                name=self.hook.name, url=safe_url(self.hook.url), why=why, n=len(self.queue.entries),
            )
        else:
            self._throttle.warn(
                "webhook-retry:" + self.hook.name,
                "webhook {name} ({url}): still failing ({why}); next try in {delay:.1f} s",
                name=self.hook.name, url=safe_url(self.hook.url), why=why, delay=delay,
            )
        self.state = WAITING
        self._timer = self.clock.callLater(delay, self._send_head)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "webhook {name} ({url}) delivering again after {s:.0f} s",
                name=self.hook.name, url=safe_url(self.hook.url),
                s=self.clock.seconds() - self._failing_since,
            )
            self._failing_since = None


@implementer(IStreamClientEndpoint)
class _Quiet:
    """An endpoint whose connections do not log "Starting factory" / "Stopping
    factory" at info level (twice per try while a receiver is down)."""

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, factory: Any) -> defer.Deferred:
        factory.noisy = False
        return self._endpoint.connect(factory)


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """TCP to the hook's host, with TLS verified against the system's trust
    store and the host name for ``https``."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:  # noqa: N802 - the interface's name
        host = uri.host.decode("ascii")
        endpoint: Any = HostnameEndpoint(self.reactor, host, uri.port)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
        return _Quiet(endpoint)


class TreqPoster:
    """``post`` over treq: one persistent connection per receiver, redirects not
    followed, the answer's body read up to ``MAX_ANSWER`` bytes and thrown away,
    the whole exchange bounded by the hook's timeout."""

    def __init__(self, reactor: Any) -> None:
        import treq
        from treq.client import HTTPClient

        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 1  # one at a time per hook anyway
        agent = Agent.usingEndpointFactory(reactor, _Endpoints(reactor), pool=self.pool)
        self.client = HTTPClient(agent)
        self._collect = treq.collect

    def post(self, url: str, body: bytes, headers: dict[bytes, list[bytes]], timeout: float) -> defer.Deferred:
        d = defer.ensureDeferred(self._post(url, body, headers))
        d.addTimeout(timeout, self.reactor)
        return d

    async def _post(self, url: str, body: bytes, headers: dict[bytes, list[bytes]]) -> int:
        response = await self.client.post(url, data=body, headers=headers, allow_redirects=False)
        seen = [0]

        def discard(chunk: bytes) -> None:
            seen[0] += len(chunk)
            if seen[0] > MAX_ANSWER:
                raise ValueError(f"answer body over {MAX_ANSWER} bytes")

        try:
            await self._collect(response, discard)
        except ValueError:
            pass  # the status code is what counts; the connection is dropped
        return int(response.code)

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()


__all__ = ["HookSender", "TreqPoster", "retryable"]
