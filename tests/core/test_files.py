"""callcenter/files.py: the one bounded read of the operator's small files,
and each of its users giving its clear error through it (--agents, --users,
--webhooks and its secret files, --ami-secret-file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.python import usage

from callcenter.agents_file import MAX_BYTES as AGENTS_MAX
from callcenter.agents_file import AgentsFileError, load_agents
from callcenter.auth import users as users_mod
from callcenter.files import FileReadError, read_bounded
from callcenter.options import MAX_AMI_SECRET_FILE, Options
from callcenter.webhooks import config as wh


def test_reads_the_whole_file_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    text = "Zoé,ünïcode\n" * 10
    path.write_text(text, encoding="utf-8")
    size = len(text.encode("utf-8"))  # the limit counts bytes, not characters
    assert read_bounded(str(path), size) == text
    with pytest.raises(FileReadError) as err:
        read_bounded(str(path), size - 1)
    assert str(err.value) == f"{path}: larger than {size - 1} bytes"
    # A BOM (as some Windows editors write) is not part of the text.
    path.write_bytes(b"\xef\xbb\xbf1001,Ann\n")
    assert read_bounded(str(path), 100) == "1001,Ann\n"


def test_never_reads_more_than_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of zeros that take no disk
    with pytest.raises(FileReadError, match=r": larger than 4 MiB$"):
        read_bounded(str(big), 4 << 20)
    with pytest.raises(FileReadError, match=r": larger than 64 KiB$"):
        read_bounded(str(big), 64 << 10)


@pytest.mark.parametrize("make, why", [
    (lambda p: None, "cannot read (No such file or directory)"),
    (lambda p: p.mkdir(), "cannot read (Is a directory)"),
    (lambda p: p.write_bytes(b"ok\n\xff\xfe"), "not UTF-8 text (byte 3)"),
])
def test_errors_name_the_file_and_say_why(tmp_path: Path, make, why: str) -> None:  # noqa: ANN001
    path = tmp_path / "conf"
    make(path)
    with pytest.raises(FileReadError) as err:
        read_bounded(str(path), 1024)
    assert str(err.value) == f"{path}: {why}"
    assert (err.value.path, err.value.why) == (str(path), why)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_permission(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(FileReadError, match="cannot read \\(Permission denied\\)"):
        read_bounded(str(path), 1024)


def _over(tmp_path: Path, name: str, limit: int) -> Path:
    path = tmp_path / name
    path.write_bytes(b"a" * (limit + 1))
    return path


def test_every_config_file_is_read_through_it(tmp_path: Path) -> None:
    # Each file one byte over its own bound: refused with the option named.
    path = _over(tmp_path, "agents.csv", AGENTS_MAX)
    with pytest.raises(AgentsFileError, match=f"^--agents {path}: larger than 4 MiB$"):
        load_agents(str(path))

    path = _over(tmp_path, "users", users_mod.MAX_USERS_FILE)
    with pytest.raises(users_mod.UsersFileError, match=f"^--users {path}: larger than 4 MiB$"):
        users_mod.load(str(path))
    # ...bytes, not characters: 2 bytes a character, half as many characters.
    path.write_text("é" * (users_mod.MAX_USERS_FILE // 2 + 1), encoding="utf-8")
    with pytest.raises(users_mod.UsersFileError, match="larger than 4 MiB"):
        users_mod.load(str(path))

    defaults = wh.HookConfig(name="", url="", secret=b"")
    path = _over(tmp_path, "hooks.toml", wh.MAX_FILE)
    with pytest.raises(wh.ConfigError, match=f"^--webhooks {path}: larger than 64 KiB$"):
        wh.load_hooks_file(str(path), defaults, {})
    path.write_bytes(b'[[hook]]\nurl = "https://crm.example/\xff"\n')
    with pytest.raises(wh.ConfigError, match=f"^--webhooks {path}: not UTF-8 text \\(byte 36\\)$"):
        wh.load_hooks_file(str(path), defaults, {})

    path = _over(tmp_path, "hook.secret", wh.MAX_SECRET_FILE)
    with pytest.raises(wh.ConfigError, match=f"^--webhook-secret-file {path}: larger than"):
        wh.read_secret_file(str(path), "--webhook-secret-file")
    path.write_text("  s3cret-value\n")
    assert wh.read_secret_file(str(path), "--webhook-secret-file") == b"s3cret-value"
    with pytest.raises(wh.ConfigError, match=f"^--webhook-secret-file {tmp_path}/gone: cannot read"):
        wh.read_secret_file(str(tmp_path / "gone"), "--webhook-secret-file")

    path = _over(tmp_path, "ami.secret", MAX_AMI_SECRET_FILE)
    o = Options(environ={})
    with pytest.raises(usage.UsageError, match=f"^--ami-secret-file {path}: larger than 4 KiB$"):
        o.parseOptions(["--ami-secret-file", str(path), "--report", str(tmp_path / "r.csv")])
