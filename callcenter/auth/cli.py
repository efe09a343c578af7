"""``callcenter-users``: manage the users file without ever writing a password into it.

    callcenter-users [--file PATH] add NAME --role supervisor [--queues q1,q2] [--agent 1001] [--token]
    callcenter-users [--file PATH] passwd NAME
    callcenter-users [--file PATH] token NAME          # new wallboard token (the old one stops working)
    callcenter-users [--file PATH] remove NAME
    callcenter-users [--file PATH] list

Passwords are read from the terminal (asked twice) or, when stdin is not a
terminal, as its first line (for scripts: ``printf '%s\\n' "$PW" | ...``);
never from the command line, where ``ps`` and the shell history would see it.
A wallboard token is printed once and stored only as its hash.  Every change
is checked whole before the file is rewritten atomically; a bad one is one
line on stderr, exit status 2, and the file unchanged.  The service picks the
change up by itself (file watch or SIGHUP).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from callcenter.auth import users as users_mod
from callcenter.auth.users import ROLES, Users, UsersFileError

DEFAULT_FILE = os.environ.get("CALLCENTER_USERS", "/etc/callcenter/users")


class CLIError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callcenter-users", description="Manage the callcenter users file.")
    p.add_argument("--file", default=DEFAULT_FILE, help=f"users file (default {DEFAULT_FILE}, or $CALLCENTER_USERS)")
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, help=", ".join(ROLES))
    add.add_argument("--queues", help="comma-separated queues a supervisor or wallboard sees (default: all)")
    add.add_argument("--agent", help="the agent id of an agent-role user")
    add.add_argument("--token", action="store_true", help="wallboard: make a token instead of asking a password")
    for name, text in (("passwd", "change a user's password"), ("token", "new wallboard token"),
                       ("remove", "remove a user (their sessions end)")):
        sub.add_parser(name, help=text).add_argument("name")
    sub.add_parser("list", help="list users and roles (no hashes)")
    return p


def read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password again: "):
            raise CLIError("the two passwords differ")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise CLIError("empty password")
    return password


def _load(path: str, must_exist: bool) -> Users:
    if not os.path.exists(path):
        if must_exist:
            raise CLIError(f"{path}: no such users file")
        return Users()
    return users_mod.load(path)


def run(argv: Sequence[str], stdin: TextIO, stdout: TextIO) -> None:
    args = _parser().parse_args(argv)
    path = args.file
    users = _load(path, args.command != "add")
    if args.command == "list":
        for u in sorted(users.by_name.values(), key=lambda u: u.name):
            scope = ",".join(sorted(u.queues)) if u.queues is not None else ""
            login = "+".join(k for k, v in (("password", u.password), ("token", u.token)) if v) or "-"
            stdout.write(f"{u.name}\t{u.role}\t{scope or u.agent or '*'}\t{login}\n")
        return
    name = args.name
    token = None
    if args.command == "add":
        if users.get(name) is not None:
            raise CLIError(f"user {name} exists already (use passwd, or remove first)")
        queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
        # Check everything but the password before asking for it.
        users_mod.make_user(name, args.role, queues=queues, agent=args.agent)
        if args.token:
            token = users_mod.new_token()
            user = users_mod.make_user(name, args.role, queues=queues, agent=args.agent,
                                       token=users_mod.token_hash(token))
        else:
            user = users_mod.make_user(name, args.role, queues=queues, agent=args.agent,
                                       password=users_mod.hash_password(read_password(stdin)))
        users = users.with_user(user)
    else:
        user = users.get(name)
        if user is None:
            raise CLIError(f"no user {name}")
        if args.command == "remove":
            users = users.without(name)
        elif args.command == "passwd":
            users = users.replace_user(name, password=users_mod.hash_password(read_password(stdin)))
        elif args.command == "token":
            if user.role != "wallboard":
                raise CLIError(f"{name} is a {user.role}: only wallboards have tokens")
            token = users_mod.new_token()
            users = users.replace_user(name, token=users_mod.token_hash(token))
    users_mod.save(path, users)
    if token is not None:
        stdout.write(f"token for {name} (shown once; open https://HOST/?token=…):\n{token}\n")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv, sys.stdin, sys.stdout)
    except (CLIError, UsersFileError) as e:
        sys.stderr.write(f"callcenter-users: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"callcenter-users: {e.filename or ''}: {e.strerror}\n")
        return 2
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("callcenter-users: cancelled, nothing changed\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
