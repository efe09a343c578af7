"""The ``twistd callcenter`` plugin (no __init__.py here, by Twisted's design)."""

from twisted.application.service import ServiceMaker

callcenter = ServiceMaker(
    "callcenter",
    "callcenter.service",
    "Real-time call-center CTI for Asterisk (AMI, dashboard, KPIs, report).",
    "callcenter",
)
