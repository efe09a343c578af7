"""Static checks of the playbook, the roles and the systemd unit."""

from __future__ import annotations

import json
import re
import shutil
import stat
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from callcenter.options import Options, env_name
from tests.deploy import asterisk_conf as ac
from tests.deploy.conftest import ANSIBLE_DIR, REPO, ansible_env, run, tool

ROLES = ANSIBLE_DIR / "roles"
UNIT = ROLES / "callcenter" / "files" / "callcenter.service"
GOOD_SECRETS = {
    "vault_callcenter_ami_secret": "ami-secret-0123456789abcdef",
    "vault_redis_password": "redis-password-0123456789",
}


@pytest.mark.parametrize("inventory", ["production", "example"])
def test_syntax_check(inventory):
    proc = run([tool("ansible-playbook"), "--syntax-check", "ansible/playbook.yml",
                "-i", f"ansible/inventories/{inventory}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile():
    proc = run([tool("ansible-lint"), "--offline", "-c", "ansible/.ansible-lint",
                "--profile", "production", "ansible/"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out


def _local_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "local.yml"
    inv.write_text(yaml.safe_dump({"callcenter": {"hosts": {"testhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }}}}))
    return inv


def _validate(tmp_path: Path, extra: dict) -> tuple[int, str]:
    # validate.yml only asserts (gather_facts: false): nothing touches this machine.
    proc = run([tool("ansible-playbook"), "ansible/validate.yml",
                "-i", "ansible/inventories/production", "-i", str(_local_inventory(tmp_path)),
                "--limit", "testhost", "-e", json.dumps(extra)])
    return proc.returncode, proc.stdout + proc.stderr


def test_playbook_refuses_to_run_without_secrets(tmp_path):
    rc, out = _validate(tmp_path, {})
    assert rc != 0
    assert "redis_password must be set" in out

    rc, out = _validate(tmp_path, {"vault_redis_password": GOOD_SECRETS["vault_redis_password"]})
    assert rc != 0
    assert "callcenter_ami_secret must be set" in out


@pytest.mark.parametrize("bad", [
    {"vault_redis_password": "short"},
    {"vault_callcenter_ami_secret": "has;semicolon-0123456789"},
    {"asterisk_phones": [{"id": "1001", "password": "too-short"}]},
    {"asterisk_phones": [{"id": "10x1", "password": "long-enough-password"}]},
    # A comma would split the login's UserEvent(LOGGEDIN,…,name: ${CALLERID(name)}).
    {"asterisk_phones": [{"id": "1001", "name": "Smith, Ann", "password": "phone-password-1001"}]},
    {"callcenter_settings": {"timezone": "$HOME"}},
    {"asterisk_sip_bind_address": "0.0.0.0; evil"},
    {"asterisk_sip_port": 70000},
    {"asterisk_rtp_address": "eth0"},
])
def test_playbook_refuses_weak_or_unsafe_values(tmp_path, bad):
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, **bad})
    assert rc != 0, out
    assert "failed=1" in out
    for secret in ("short", "has;semicolon-0123456789", "too-short", "long-enough-password"):
        assert f'"{secret}"' not in out  # values are not echoed back


def test_playbook_accepts_good_values(tmp_path):
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, "asterisk_phones": [
        {"id": "1001", "name": "Agent 1001", "password": "phone-password-1001"}],
        "asterisk_sip_bind_address": "::", "asterisk_sip_port": 5070, "asterisk_rtp_address": "192.0.2.11"})
    assert rc == 0, out


def _configure_asterisk(tmp_path: Path, etc: Path) -> str:
    playbook = tmp_path / "configure.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Render the Asterisk configuration",
        "hosts": "callcenter",
        "gather_facts": False,
        "vars": {
            "asterisk_config_dir": str(etc),
            "asterisk_config_src": str(REPO / "asterisk-config"),
            "asterisk_group": "root",
            "asterisk_manage_service": False,
            "asterisk_sip_bind_address": "192.0.2.10",
            "asterisk_sip_port": 5070,
            "asterisk_rtp_address": "192.0.2.11",
            "callcenter_ami_secret": "ami-secret-0123456789abcdef",
            "asterisk_phones": [
                {"id": "1001", "name": "Agent 1001", "password": "phone-password-1001"},
                {"id": 2001, "password": "phone-password-2001"},
            ],
        },
        "tasks": [{"name": "Configure", "ansible.builtin.import_role": {
            "name": "asterisk", "tasks_from": "configure.yml"}}],
    }]))
    proc = run([tool("ansible-playbook"), str(playbook), "-i", str(_local_inventory(tmp_path))],
               env=ansible_env(ANSIBLE_ROLES_PATH=str(ROLES)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_asterisk_role_installs_config_with_secret_and_phones(tmp_path):
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    out = _configure_asterisk(tmp_path, etc)
    assert re.search(r"changed=4\b", out), out

    files = sorted(p.name for p in etc.iterdir())
    assert files == ["extensions.conf", "manager.conf", "manager_callcenter_secret.conf",
                     "pjsip.conf", "pjsip_phones.conf", "pjsip_transports.conf", "queues.conf"]
    for p in etc.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p.name
    for name in ("extensions.conf", "manager.conf", "pjsip.conf", "queues.conf"):
        assert (etc / name).read_bytes() == (REPO / "asterisk-config" / name).read_bytes()

    # manager.conf with its #include followed: the user has the secret.
    user = ac.section(ac.parse(etc / "manager.conf", follow_includes=True), "callcenter")
    assert user.get("secret") == "ami-secret-0123456789abcdef"
    assert user.get("read") and user.get("write")

    sections = ac.parse(etc / "pjsip.conf", follow_includes=True)
    templates = {s.name for s in sections if s.template}
    phones = [s for s in sections if not s.template and s.name.isdigit()]
    assert {(s.name, tuple(s.parents)) for s in phones} == {
        (pid, (tmpl,)) for pid in ("1001", "2001") for tmpl in ("phone", "phone-auth", "phone-aor")
    }
    assert {p for s in phones for p in s.parents} <= templates
    auth = [s for s in phones if s.parents == ["phone-auth"] and s.name == "1001"][0]
    assert auth.get("username") == "1001" and auth.get("password") == "phone-password-1001"
    endpoint = [s for s in phones if s.parents == ["phone"] and s.name == "2001"][0]
    assert endpoint.get("auth") == endpoint.get("aors") == "2001"
    assert endpoint.get("callerid") == '"Phone 2001" <2001>'
    # The SIP and RTP variables of the run (defaults: tests/deploy/test_asterisk_config.py).
    assert {s.get("protocol"): s.get("bind") for s in sections if s.get("type") == "transport"} == {
        "udp": "192.0.2.10:5070", "tcp": "192.0.2.10:5070"}
    assert (endpoint.get("media_address"), endpoint.get("bind_rtp_to_media_address")) == ("192.0.2.11", "yes")

    # A second run changes nothing (the reload handler would not fire).
    out = _configure_asterisk(tmp_path, etc)
    assert re.search(r"changed=0\b", out), out


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_contents():
    unit = _unit()
    role_vars = yaml.safe_load((ROLES / "callcenter" / "vars" / "main.yml").read_text())
    svc = unit["Service"]
    report = role_vars["callcenter_report"]
    assert svc["ExecStart"] == [
        f"{role_vars['callcenter_venv']}/bin/twistd --nodaemon --pidfile= callcenter --report {report}"
    ]
    assert svc["User"] == [role_vars["callcenter_user"]]
    assert svc["EnvironmentFile"] == [role_vars["callcenter_env_file"]]
    assert svc["Restart"] == ["on-failure"]  # also after a watchdog timeout
    # Issue 13: started = READY=1 from the service; a wedged reactor misses WATCHDOG=1.
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert _seconds(svc["WatchdogSec"][0]) > 0
    # READY=1 comes at the latest --ready-timeout after the port opens: well inside the start bound.
    ready = next(float(o[2]) for o in Options.optParameters if o[0] == "ready-timeout")
    assert _seconds(svc["TimeoutStartSec"][0]) >= ready + 30
    assert "AF_UNIX" in svc["RestrictAddressFamilies"][0]  # the notify socket
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes")]:
        assert svc[key] == [value]
    assert svc["ReadWritePaths"] == [str(Path(report).parent)] == [role_vars["callcenter_state_dir"]]
    for key in ("After", "Wants"):
        deps = " ".join(unit["Unit"][key]).split()
        assert {"redis-server.service", "asterisk.service"} <= set(deps)
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", value.strip())
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_environment_file_sets_only_real_options():
    template = (ROLES / "callcenter" / "templates" / "callcenter.env.j2").read_text()
    known = {env_name(o[0]) for o in Options.optParameters} | {env_name(o[0]) for o in Options.optFlags}
    used = set(re.findall(r"^(CALLCENTER_[A-Z_]+)=", template, re.M))
    assert {"CALLCENTER_AMI_SECRET", "CALLCENTER_REDIS"} <= used
    assert used <= known, used - known
    assert "CALLCENTER_REPORT=" not in template  # on the unit's command line


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify checks that ExecStart's binary exists and the units it refers to
    # load: give it a root with the host's system units and a stand-in twistd.
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    twistd = root / "opt/callcenter/venv/bin/twistd"
    twistd.parent.mkdir(parents=True)
    twistd.write_text("#!/bin/sh\n")
    twistd.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy("/bin/kill", root / "bin/kill")
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/callcenter.service")
    proc = run([analyze, "verify", f"--root={root}", "/etc/systemd/system/callcenter.service"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""  # not even a warning (e.g. a misspelt key)


def _build(src: Path, out: Path) -> dict:
    proc = run([sys.executable, str(ROLES / "callcenter" / "files" / "build_release.py"),
                "--src", str(src), "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_release_build_is_reproducible(tmp_path):
    # From a snapshot: the working tree may change between two builds.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "node_modules", "build", "*.egg-info", "__pycache__", "tests"))
    a, b = _build(src, tmp_path / "a"), _build(src, tmp_path / "b")
    assert Path(a["wheel"]).read_bytes() == Path(b["wheel"]).read_bytes()
    assert a["wheel_name"].startswith("callcenter-") and a["wheel_name"].endswith(".whl")

    names = zipfile.ZipFile(a["wheel"]).namelist()
    assert "twisted/plugins/callcenter_plugin.py" in names
    assert "callcenter/options.py" in names
    assert not [n for n in names if n.startswith(("tests/", "ansible/")) or "node_modules" in n]
    # The page and its libraries are package data: the server runs no npm.
    for page_file in ("index.html", "app.js", "vendor/vue.global.prod.js", "vendor/bootstrap.min.css"):
        assert f"callcenter/web/static/{page_file}" in names, names
    assert not [n for n in names if n.endswith(("package.json", "package-lock.json"))]


def test_roles_install_no_node_and_leave_the_pbx_alone():
    # The target never gets Node.js/npm; with callcenter_manage_asterisk
    # false the play has no asterisk role at all.
    code = [line for p in (ROLES / "callcenter").rglob("*.yml")
            for line in p.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if re.search(r"\b(nodejs|npm|node_modules)\b", line)]
    play = yaml.safe_load((ANSIBLE_DIR / "playbook.yml").read_text())[-1]
    (asterisk,) = [r for r in play["roles"] if r["role"] == "asterisk"]
    assert asterisk["when"] == "callcenter_manage_asterisk | default(true) | bool"
    defaults = yaml.safe_load((ROLES / "callcenter" / "defaults" / "main.yml").read_text())
    assert defaults["callcenter_manage_asterisk"] is True


def test_validation_skips_asterisk_checks_on_an_existing_pbx(tmp_path):
    # Phones are the asterisk role's business: unchecked when it does not run.
    bad_phones = {"asterisk_phones": [{"id": "1001", "password": "too-short"}]}
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, **bad_phones, "callcenter_manage_asterisk": False})
    assert rc == 0, out
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, **bad_phones})
    assert rc != 0, out


def _render_env(tmp_path: Path, extra: dict) -> dict[str, str]:
    """The role's environment file as the template task writes it: role defaults and vars, plus extra."""
    dest = tmp_path / "callcenter.env"
    playbook = tmp_path / "render-env.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Render the environment file",
        "hosts": "callcenter",
        "gather_facts": False,
        "vars_files": [str(ROLES / "callcenter" / "defaults" / "main.yml"),
                       str(ROLES / "callcenter" / "vars" / "main.yml")],
        "tasks": [{"name": "Render", "ansible.builtin.template": {
            "src": str(ROLES / "callcenter" / "templates" / "callcenter.env.j2"),
            "dest": str(dest), "mode": "0600"}}],
    }]))
    secrets = {"callcenter_ami_secret": GOOD_SECRETS["vault_callcenter_ami_secret"],
               "redis_password": GOOD_SECRETS["vault_redis_password"]}
    proc = run([tool("ansible-playbook"), str(playbook), "-i", str(_local_inventory(tmp_path)),
                "-e", json.dumps({**secrets, **extra})])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The service reads this file through systemd's EnvironmentFile=: KEY=VALUE lines.
    return dict(line.split("=", 1) for line in dest.read_text().splitlines()
                if line and not line.startswith("#"))


def test_role_serves_metrics_on_loopback_by_default(tmp_path):
    env = _render_env(tmp_path, {})
    opts = Options(environ=env)  # the service's own reading of the environment
    assert opts["metrics-listen"] == "tcp:9464:interface=127.0.0.1"
    assert not opts["metrics-agents"]
    # ...and the playbook's checks pass the defaults (validate.yml loads them).
    assert _validate(tmp_path, GOOD_SECRETS)[0] == 0


def test_role_metrics_variables_reach_the_service(tmp_path):
    env = _render_env(tmp_path, {"callcenter_metrics_listen": "tcp:9464:interface=10.0.0.5",
                                 "callcenter_metrics_agents": True})
    opts = Options(environ=env)
    assert opts["metrics-listen"] == "tcp:9464:interface=10.0.0.5"
    assert opts["metrics-agents"] is True

    env = _render_env(tmp_path, {"callcenter_metrics_listen": ""})
    assert "CALLCENTER_METRICS_LISTEN" not in env
    assert Options(environ=env)["metrics-listen"] == ""  # the service's default: off


@pytest.mark.parametrize("listen", [
    "tcp:9464",  # every address
    "tcp:9464:interface=0.0.0.0",
    r"tcp:9464:interface=\:\:",
    "tcp:9464:interface=127.0.0.1; evil",
    "tcp:9464:interface=127.0.0.1\nCALLCENTER_AMI=tcp:host=evil",
    "unix:/tmp/x:interface=127.0.0.1",
])
def test_playbook_refuses_metrics_on_every_address(tmp_path, listen):
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, "callcenter_metrics_listen": listen})
    assert rc != 0, out
    assert "callcenter_metrics_listen is a Twisted endpoint" in out


@pytest.mark.parametrize("listen", ["", "tcp:9464:interface=10.0.0.5", r"tcp:9464:interface=\:\:1",
                                    "tcp:19464:interface=127.0.0.1:backlog=10"])
def test_playbook_accepts_metrics_on_an_interface(tmp_path, listen):
    rc, out = _validate(tmp_path, {**GOOD_SECRETS, "callcenter_metrics_listen": listen})
    assert rc == 0, out
