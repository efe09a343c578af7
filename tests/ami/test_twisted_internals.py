"""The private Twisted names callcenter/ami/twisted_internals.py relies on are
still there and still mean what it assumes: these fail loudly on a Twisted
release that renames them (then fix the adapter, nothing else reads them)."""

from __future__ import annotations

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import (
    HostnameEndpoint,
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, globalLogPublisher

from callcenter.ami import twisted_internals as ti

from .conftest import LogCapture


def test_endpoints_keep_their_address_where_the_adapter_reads_it() -> None:
    r = MemoryReactorClock()
    tcp = TCP4ClientEndpoint(r, "127.0.0.1", 5038)
    assert (tcp._host, getattr(tcp, ti.PORT_ATTRIBUTE)) == ("127.0.0.1", 5038)
    host = HostnameEndpoint(r, b"pbx.example", 5038)
    assert host._hostText == "pbx.example"
    tls = wrapClientTLS(optionsForClientTLS("pbx.example"), tcp)
    assert getattr(tls, ti.WRAPPED_ATTRIBUTE) is tcp
    assert ti.describe_endpoint(tcp) == "127.0.0.1:5038"
    assert ti.describe_endpoint(TCP6ClientEndpoint(r, "::1", 5038)) == "::1:5038"
    assert ti.describe_endpoint(host) == "pbx.example:5038"
    assert ti.describe_endpoint(SSL4ClientEndpoint(r, "127.0.0.1", 5039, None)) == "127.0.0.1:5039"
    assert ti.describe_endpoint(tls) == "tls:127.0.0.1:5038"


class _Refused:
    def connect(self, factory: Factory) -> Deferred:
        return fail(ConnectionRefusedError())


def _retries_logged(service_class: type[ClientService]) -> list[str]:
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    clock = MemoryReactorClock()
    service = service_class(_Refused(), Factory(), retryPolicy=lambda n: 1.0, clock=clock)
    try:
        service.startService()
        clock.advance(1)
        clock.advance(1)
        service.stopService()
    finally:
        globalLogPublisher.removeObserver(capture)
    return capture.matching(ti.RETRY_CHATTER)


def test_client_service_logs_its_retries_through_the_overridden_logger() -> None:
    assert isinstance(ClientService.__dict__.get(ti.CLIENT_SERVICE_LOG), Logger)
    assert _retries_logged(ClientService), "ClientService no longer logs 'Scheduling retry'"
    assert _retries_logged(ti.QuietClientService) == []
