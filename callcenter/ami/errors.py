"""Failures an AMI action's Deferred can errback with."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcenter.ami.message import Message


class AMIException(Exception):
    """Base of the AMI client's own failures."""


class AMIError(AMIException):
    """Asterisk answered ``Response: Error``; ``str(err)`` is its ``Message:`` text."""

    def __init__(self, message: str, response: Message | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response


class AMIConnectionLost(AMIException):
    """The connection dropped before the action was answered."""


class AMINotConnected(AMIException):
    """No logged-in AMI connection to send the action on."""
