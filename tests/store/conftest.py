"""A real, throw-away ``redis-server`` per test (never the one on 6379)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``redis-server`` on a free loopback port in a temp dir; stop/start keep the port."""

    def __init__(self, tmp: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.dir = tmp
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        assert self.port != 6379

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER, "redis-server is not installed"
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            except RuntimeError as e:
                if "NOAUTH" in str(e):  # up, and wants a password
                    return
                raise
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    # A tiny blocking RESP client: tests inspect Redis independently of the code under test.
    def command(self, *args: str | bytes, db: int = 0) -> object:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if db:
                s.sendall(_encode(("SELECT", str(db))))
                _read(f)
            s.sendall(_encode(args))
            return _read(f)

    def dump(self, prefix: str = "callcenter:", db: int = 0) -> dict[str, object]:
        """Every key under ``prefix`` with its value (strings decoded, sets as sets)."""
        out: dict[str, object] = {}
        for key in self.command("KEYS", prefix + "*", db=db):  # fine in a test's private Redis
            kind = self.command("TYPE", key, db=db)
            if kind == "string":
                out[key.decode()] = self.command("GET", key, db=db).decode()
            elif kind == "set":
                out[key.decode()] = {m.decode() for m in self.command("SMEMBERS", key, db=db)}
            else:
                out[key.decode()] = kind
        return out


def _encode(args: tuple[str | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def _read(f) -> object:
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError(f"bad reply {line!r}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class LogCapture:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def lines(self, level: LogLevel | None = None) -> list[str]:
        return [formatEvent(e) for e in self.events if level is None or e.get("log_level") == level]

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines() if text in line]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield capture
    finally:
        globalLogPublisher.removeObserver(capture)
