"""The one place that reads Twisted's private names, because no public way exists.

Two small needs of the AMI client:

* ``QuietClientService``: ``ClientService`` logs every scheduled retry at info
  level ("Scheduling retry N to connect ..."), through its class attribute
  ``_log``; it has no option to silence that, and the AMI client reports a
  reconnecting PBX itself, once per state change.  Replacing ``_log`` on a
  subclass is the only way short of filtering the whole process's log.
* ``describe_endpoint``: ``host:port`` of a TCP/SSL/hostname endpoint (and
  ``tls:`` for ``wrapClientTLS``) for the log lines.  Endpoints keep their
  address in private attributes only (``_host``/``_port``, ``_hostText``,
  ``_wrappedEndpoint``); callers who know a better name pass ``description``
  to ``AMIClient`` instead.

``tests/ami/test_twisted_internals.py`` fails loudly when a Twisted release
renames any of these.
"""

from __future__ import annotations

from twisted.application.internet import ClientService
from twisted.logger import FilteringLogObserver, Logger, PredicateResult, globalLogPublisher

#: Private endpoint attributes read for the address, by endpoint class.
HOST_ATTRIBUTES = ("_hostText", "_host", "_hostStr")
PORT_ATTRIBUTE = "_port"
WRAPPED_ATTRIBUTE = "_wrappedEndpoint"  # wrapClientTLS
#: ClientService's private class attribute holding its Logger.
CLIENT_SERVICE_LOG = "_log"
RETRY_CHATTER = "Scheduling retry"


def _not_retry_chatter(event: dict) -> PredicateResult:
    if str(event.get("log_format", "")).startswith(RETRY_CHATTER):
        return PredicateResult.no
    return PredicateResult.maybe


class QuietClientService(ClientService):
    """``ClientService`` without its per-retry info line (everything else it logs stays)."""

    _log = Logger(
        namespace="callcenter.ami.client.ClientService",
        observer=FilteringLogObserver(globalLogPublisher, [_not_retry_chatter]),
    )


def describe_endpoint(endpoint: object) -> str:
    """``host:port`` for Twisted's TCP/SSL/hostname endpoints, else repr()."""
    for attr in HOST_ATTRIBUTES:
        host = getattr(endpoint, attr, None)
        if host is not None:
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            port = getattr(endpoint, PORT_ATTRIBUTE, None)
            return f"{host}:{port}" if port is not None else str(host)
    wrapped = getattr(endpoint, WRAPPED_ATTRIBUTE, None)
    if wrapped is not None:
        return f"tls:{describe_endpoint(wrapped)}"
    return repr(endpoint)
