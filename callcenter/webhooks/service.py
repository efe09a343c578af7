"""``WebhookService``: the webhooks' child of the service tree.

Built with the tree (the outbox must be part of the store's transactions
before the store loads); starts its senders once the store has loaded, and
stops them before the store closes, leaving undelivered events in Redis for
the next start.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from callcenter.webhooks.config import HookConfig, safe_url
from callcenter.webhooks.delivery import HookSender, Post, TreqPoster
from callcenter.webhooks.outbox import Outbox

log = Logger()


class WebhookService(service.Service):
    name = "webhooks"

    def __init__(
        self, reactor: Any, center: Any, hooks: list[HookConfig], prefix: str, post: Post | None = None
    ) -> None:
        self.reactor = reactor
        self.outbox = Outbox(reactor, center, hooks, prefix)
        self._post = post
        self._poster: TreqPoster | None = None
        self.senders: list[HookSender] = []

    def startService(self) -> None:
        super().startService()
        post = self._post
        if post is None:
            self._poster = TreqPoster(self.reactor)
            post = self._poster.post
        self.senders = [HookSender(self.reactor, q, self.outbox, post) for q in self.outbox.queues]
        self.outbox.on_wake(self._wake)
        for q in self.outbox.queues:
            log.info(
                "webhook {name}: {url} gets {events}",
                name=q.hook.name, url=safe_url(q.hook.url), events=", ".join(sorted(q.hook.events)),
            )
        self._wake()

    def _wake(self) -> None:
        for sender in self.senders:
            if sender.queue.entries:
                sender.wake()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        self.outbox.on_wake(lambda: None)
        d = defer.DeferredList([s.stop() for s in self.senders], consumeErrors=True)
        if self._poster is not None:
            poster = self._poster
            d.addCallback(lambda _: poster.close())
        return d


__all__ = ["WebhookService"]
