"""The Ansible role's users file template gives a file the service reads."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from argon2 import PasswordHasher

from callcenter.auth import users as users_mod

TEMPLATE = Path(__file__).parents[2] / "ansible" / "roles" / "callcenter" / "templates" / "users.j2"


def test_template_renders_a_valid_users_file():
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    env.filters["to_json"] = json.dumps
    hashed = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("pw")
    token = users_mod.token_hash("t" * 43)
    text = env.from_string(TEMPLATE.read_text()).render(ansible_managed="managed", callcenter_users=[
        {"name": "sam", "role": "supervisor", "queues": ["q-sales"], "password_hash": hashed},
        {"name": "1001", "role": "agent", "agent": 1001, "password_hash": hashed},
        {"name": "tv", "role": "wallboard", "token_hash": token},
    ])
    users = users_mod.parse(text)
    assert users.get("sam").queues == frozenset({"q-sales"})
    assert users.get("1001").agent == "1001"
    assert users_mod.verify_password(users.get("1001").password, "pw")
    assert users.by_token("t" * 43).name == "tv"
