"""``callcenter-users``: hashes only, checked input, atomic writes."""

from __future__ import annotations

import io
import json
import os

import pytest
from argon2 import PasswordHasher

from callcenter.auth import cli
from callcenter.auth import users as users_mod


class Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def run(path, *args, stdin="s3cret-pass\n"):
    out = io.StringIO()
    try:
        cli.run(["--file", str(path), *args], Stdin(stdin), out)
        code = 0
    except (cli.CLIError, users_mod.UsersFileError) as e:
        out.write(f"callcenter-users: {e}\n")
        code = 2
    return code, out.getvalue()


def test_add_stores_only_an_argon2id_hash_that_verifies(tmp_path):
    path = tmp_path / "users"
    assert run(path, "add", "alice", "--role", "supervisor", "--queues", "q1,q2")[0] == 0
    text = path.read_text()
    assert "s3cret-pass" not in text
    (line,) = [json.loads(x) for x in text.splitlines() if not x.startswith("#")]
    assert line["name"] == "alice" and line["role"] == "supervisor" and line["queues"] == ["q1", "q2"]
    assert line["password"].startswith("$argon2id$")
    # Verified independently with argon2-cffi itself.
    assert PasswordHasher().verify(line["password"], "s3cret-pass")
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_passwd_remove_list_and_tokens(tmp_path, capsys):
    path = tmp_path / "users"
    run(path, "add", "bob", "--role", "agent", "--agent", "1001")
    old = users_mod.load(str(path)).get("bob").password
    assert run(path, "passwd", "bob", stdin="another-one\n")[0] == 0
    new = users_mod.load(str(path)).get("bob").password
    assert new != old and PasswordHasher().verify(new, "another-one")
    code, out = run(path, "add", "tv", "--role", "wallboard", "--token")
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert token not in path.read_text()
    assert users_mod.load(str(path)).by_token(token).name == "tv"
    code, out = run(path, "token", "tv")
    assert users_mod.load(str(path)).by_token(token) is None  # revoked
    assert users_mod.load(str(path)).by_token(out.strip().splitlines()[-1]).name == "tv"
    code, out = run(path, "list")
    assert out.splitlines() == ["bob\tagent\t1001\tpassword", "tv\twallboard\t*\ttoken"]
    assert "$argon2" not in out and "sha256" not in out
    assert run(path, "remove", "bob")[0] == 0
    assert users_mod.load(str(path)).get("bob") is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["add", "x", "--role", "boss"], "unknown role 'boss'"),
        (["add", "x", "--role", "agent"], "the agent role needs --agent"),
        (["add", "old", "--role", "admin"], "user old exists already"),
        (["add", "bad name", "--role", "admin"], "bad user name"),
        (["add", "x", "--role", "agent", "--agent", "1", "--queues", "q"], "only supervisors and wallboards"),
        (["add", "x", "--role", "admin", "--token"], "only wallboards have tokens"),
        (["passwd", "nobody"], "no user nobody"),
        (["token", "old"], "only wallboards have tokens"),
        (["remove", "nobody"], "no user nobody"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, capsys, args, message):
    path = tmp_path / "users"
    run(path, "add", "old", "--role", "admin")
    before = path.read_bytes()
    stat = os.stat(path)
    code = cli.main(["--file", str(path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("callcenter-users: ") and message in err, err
    assert path.read_bytes() == before and os.stat(path).st_ino == stat.st_ino
    assert [p.name for p in tmp_path.iterdir()] == ["users"]  # no temporary file left


def test_empty_password_and_no_password_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "users"
    assert run(path, "add", "x", "--role", "admin", stdin="\n")[1].startswith("callcenter-users: empty password")
    assert not path.exists()
    with pytest.raises(SystemExit):
        cli.main(["--file", str(path), "add", "x", "--role", "admin", "--password", "pw"])
    assert not path.exists()


def test_a_broken_file_is_named_with_its_line(tmp_path, capsys):
    path = tmp_path / "users"
    path.write_text('{"name": "a", "role": "admin"}\n{"name": "b", "role": "root"}\n')
    assert cli.main(["--file", str(path), "list"]) == 2
    assert f"{path}:2: unknown role 'root'" in capsys.readouterr().err
