"""The real playbook, run twice against a throwaway Debian 12 root on this machine.

The root is made with debootstrap (cached under var/deploy-test/, see
rootfs.py) and entered with Ansible's community.general.chroot connection.
Two deployments, each into a fresh root:

- "asterisk" (callcenter_manage_asterisk true): Debian 12 has no Asterisk
  package, so the asterisk role is skipped there (asterisk_skip_if_unavailable);
- "existing-pbx" (callcenter_manage_asterisk false): the root already holds
  an /etc/asterisk of its own, which must stay exactly as it was.

Redis and the callcenter role install for real, from Debian's mirror and
PyPI; the wheel (built on the controller, npm included) carries the page, so
the target gets no Node.js.  No systemd runs in a chroot: the roles enable
units for the next boot and start nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import rootfs
from tests.deploy.conftest import ANSIBLE_DIR, REPO, ansible_env, run, tool

pytestmark = pytest.mark.slow

AMI_SECRET = "ami-secret-0123456789abcdef"
REDIS_PASSWORD = "redis-password-0123456789"
VENV = "/opt/callcenter/venv"
# An existing PBX's configuration, planted before the "existing-pbx" deployment.
PBX_FILES = {
    "manager.conf": "[general]\nenabled = yes\n\n[admin]\nsecret = freepbx-own\n",
    "extensions.conf": "[from-internal]\nexten => 100,1,Answer()\n",
}
PBX_MTIME = 1_700_000_000
# The existing PBX's queue log, owned by its own user (no such name in the root).
ASTERISK_UID = 4321
QUEUE_LOG = b"1795665072|NONE|NONE|NONE|QUEUESTART|\n1795665079|1795665079.5|q-callcenter|NONE|ENTERQUEUE||5550001|1\n"


def _ensure_debootstrap() -> None:
    if shutil.which("debootstrap") or os.geteuid() != 0:
        return
    subprocess.run([str(REPO / "scripts" / "setup-system.sh"), "debootstrap"],
                   check=False, capture_output=True, timeout=600)


class Deployment:
    def __init__(self, scenario: str, root: Path, runs: list[subprocess.CompletedProcess[str]],
                 inventory: Path, env: dict[str, str]):
        self.scenario = scenario
        self.root = root
        self.runs = runs
        self.inventory = inventory
        self.env = env
        self.pbx_before: dict[str, tuple[bytes, int, int, int, int]] = {}

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def uid(self, user: str) -> int:
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2])
        raise KeyError(user)

    def gid(self, group: str) -> int:
        for line in self.path("/etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == group:
                return int(fields[2])
        raise KeyError(group)

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return rootfs.run_in_root(self.root, argv, timeout=300)


def _recap(out: str) -> dict[str, int]:
    m = re.search(r"^target\s+:\s+(.*)$", out, re.M)
    assert m, out[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def _tree(root: Path) -> dict[str, tuple[bytes, int, int, int, int]]:
    """Every file under root: content, mode, owner, group, mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.read_bytes() if p.is_file() else b"", st.st_mode,
                                         st.st_uid, st.st_gid, int(st.st_mtime))
    return out


def _plant_pbx(root: Path) -> Path:
    etc = root / "etc" / "asterisk"
    etc.mkdir(parents=True)
    for name, text in PBX_FILES.items():
        (etc / name).write_text(text)
        os.chmod(etc / name, 0o640)
        os.utime(etc / name, (PBX_MTIME, PBX_MTIME))
    logs = root / "var" / "log" / "asterisk"
    logs.mkdir(parents=True)
    (logs / "queue_log").write_bytes(QUEUE_LOG)
    for path, mode in ((logs, 0o750), (logs / "queue_log", 0o640)):
        os.chown(path, ASTERISK_UID, ASTERISK_UID)
        os.chmod(path, mode)
    return etc


@pytest.fixture(scope="module", params=["asterisk", "existing-pbx"])
def deployed(request, tmp_path_factory) -> Deployment:
    scenario = request.param
    chroot_plugin = run([tool("ansible-doc"), "-t", "connection", "community.general.chroot"])
    if chroot_plugin.returncode != 0:
        pytest.fail("community.general is not installed: pip install -r requirements-dev.txt "
                    "(the PyPI package `ansible` ships it)")
    _ensure_debootstrap()
    try:
        image = rootfs.cached_image()
    except rootfs.RootfsUnavailable as e:
        pytest.skip(f"cannot make a Debian root here: {e}")
    tmp = tmp_path_factory.mktemp("deploy")
    root = rootfs.unpack(image, tmp)
    pbx_vars: dict[str, object] = {"asterisk_skip_if_unavailable": True}
    pbx_before = {}
    if scenario == "existing-pbx":
        pbx_before = _tree(_plant_pbx(root))
        # Without skip: were the asterisk role to run, it would fail here.
        pbx_vars = {"callcenter_manage_asterisk": False, "callcenter_ami_user": "cti"}
    # Deploy a snapshot: the shared working tree may change between the runs.
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "node_modules", "build", "*.egg-info", "__pycache__", "tests"))
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"callcenter": {
        "hosts": {"target": {
            "ansible_connection": "community.general.chroot",
            "ansible_host": str(root),
            "ansible_python_interpreter": "/usr/bin/python3",
        }},
        "vars": {
            "callcenter_ami_secret": AMI_SECRET,
            "redis_password": REDIS_PASSWORD,
            **pbx_vars,
            "callcenter_src_dir": str(src),
            "asterisk_phones": [{"id": "1001", "password": "phone-password-1001"}],
            "callcenter_settings": {"sla-target": 90, "timezone": "Europe/Paris"},
        },
    }}))
    env = ansible_env()
    env.pop("PIP_FIND_LINKS", None)  # this machine's local wheel folder is not in the root
    cache = rootfs.CACHE_DIR / "cache"
    runs = []
    try:
        for _ in range(2):
            runs.append(rootfs.run_in_root(
                root,
                [tool("ansible-playbook"), str(ANSIBLE_DIR / "playbook.yml"), "-i", str(inventory)],
                env=env,
                timeout=900,
                binds={cache / "pip": "/root/.cache/pip"},
            ))
            if runs[-1].returncode != 0:
                break
        deployment = Deployment(scenario, root, runs, inventory, env)
        deployment.pbx_before = pbx_before
        yield deployment
    finally:
        rootfs.kill_processes_in(root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=False)


def test_first_run_installs_and_skips_asterisk(deployed):
    first = deployed.runs[0]
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-6000:]
    recap = _recap(first.stdout)
    assert recap["failed"] == 0 and recap["unreachable"] == 0
    assert recap["changed"] > 0
    if deployed.scenario == "asterisk":
        assert "No Asterisk package on this host" in out
    else:
        # Every task of the asterisk role is skipped, on every run.
        for run_ in deployed.runs:
            results = re.findall(r"^TASK \[asterisk : [^\]]*\][^\n]*\n(\w+)", run_.stdout, re.M)
            assert results and set(results) == {"skipping"}, run_.stdout[-6000:]


def test_existing_pbx_configuration_untouched(deployed):
    etc = deployed.path("/etc/asterisk")
    if deployed.scenario == "asterisk":
        # No Asterisk package on Debian: the skipped role wrote nothing either.
        assert not etc.exists()
        return
    # Nothing created, removed or changed (content, mode, owner, mtime).
    assert deployed.pbx_before and _tree(etc) == deployed.pbx_before
    assert {n: (etc / n).read_text() for n in PBX_FILES} == PBX_FILES
    env = deployed.path("/etc/callcenter/callcenter.env").read_text()
    assert "CALLCENTER_AMI_USER=cti\n" in env


def test_no_node_or_npm_on_the_target(deployed):
    proc = deployed.run(["chroot", str(deployed.root), "dpkg-query", "-W", "-f", "${Package} ${Status}\n"])
    assert proc.returncode == 0, proc.stderr
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    assert "redis-server" in installed  # the query sees what the roles installed
    assert not installed & {"nodejs", "npm", "libnode108", "node-gyp"}
    for name in ("node", "npm", "nodejs"):
        assert not deployed.path(f"/usr/bin/{name}").exists()
    for run_ in deployed.runs:
        assert not re.search(r"^TASK \[.*\b(npm|[Nn]ode)", run_.stdout, re.M)


def test_second_run_changes_nothing(deployed):
    assert len(deployed.runs) == 2, "the first run failed"
    second = deployed.runs[1]
    assert second.returncode == 0, (second.stdout + second.stderr)[-6000:]
    changed = re.findall(r"^TASK \[(.*?)\].*?\n(?:changed|.*\nchanged)", second.stdout, re.M)
    assert _recap(second.stdout)["changed"] == 0, changed or second.stdout[-6000:]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_unit_and_environment_file(deployed):
    unit = deployed.path("/etc/systemd/system/callcenter.service")
    assert unit.read_bytes() == (ANSIBLE_DIR / "roles/callcenter/files/callcenter.service").read_bytes()
    assert _mode(unit) == 0o644 and unit.stat().st_uid == 0
    assert deployed.path("/etc/systemd/system/multi-user.target.wants/callcenter.service").is_symlink()

    env = deployed.path("/etc/callcenter/callcenter.env")
    assert _mode(env) == 0o600 and env.stat().st_uid == 0 and env.stat().st_gid == 0
    values = dict(
        line.split("=", 1) for line in env.read_text().splitlines() if line and not line.startswith("#")
    )
    assert values["CALLCENTER_AMI_SECRET"] == AMI_SECRET
    assert values["CALLCENTER_REDIS"] == f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    assert values["CALLCENTER_SLA_TARGET"] == '"90"'
    assert values["CALLCENTER_TIMEZONE"] == '"Europe/Paris"'

    conf_dir = deployed.path("/etc/callcenter")
    assert _mode(conf_dir) == 0o750 and conf_dir.stat().st_gid == deployed.gid("callcenter")
    state = deployed.path("/var/lib/callcenter")
    assert _mode(state) == 0o750 and state.stat().st_uid == deployed.uid("callcenter")
    assert deployed.path("/etc/passwd").read_text().count("\ncallcenter:") == 1
    assert re.search(r"^callcenter:[^:]*:\d+:\d+:[^:]*:/var/lib/callcenter:/usr/sbin/nologin$",
                     deployed.path("/etc/passwd").read_text(), re.M)


def test_unit_verifies_in_the_target(deployed):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    proc = subprocess.run([analyze, "verify", f"--root={deployed.root}",
                           "/etc/systemd/system/callcenter.service"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "callcenter.service" not in proc.stdout + proc.stderr


def test_redis_installed_on_loopback_with_password(deployed):
    conf = deployed.path("/etc/redis/redis.conf").read_text()
    active = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert f"requirepass {REDIS_PASSWORD}" in active
    assert "bind 127.0.0.1 -::1" in active and "protected-mode yes" in active
    assert [line for line in active if line.startswith("bind ")] == ["bind 127.0.0.1 -::1"]
    assert deployed.path("/usr/bin/redis-server").exists()
    assert deployed.path("/etc/systemd/system/multi-user.target.wants/redis-server.service").exists()


def test_service_runs_from_its_venv_as_its_user(deployed):
    proc = deployed.run(["chroot", "--userspec=callcenter:callcenter", str(deployed.root),
                         f"{VENV}/bin/twistd", "callcenter", "--help"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--report" in proc.stdout and "CALLCENTER_AMI_SECRET" in proc.stdout
    # root wrote the plugin cache: the service user cannot (and need not).
    caches = list(deployed.path(VENV).glob("lib/python3*/site-packages/twisted/plugins/dropin.cache"))
    assert caches and caches[0].stat().st_uid == 0
    assert not deployed.path(VENV).stat().st_uid  # code belongs to root


def test_dashboard_comes_with_the_wheel(deployed):
    # The service user's own interpreter finds every file the page serves,
    # the way the service does (importlib.resources), with no --static-dir.
    proc = deployed.run(["chroot", "--userspec=callcenter:callcenter", str(deployed.root),
                         f"{VENV}/bin/python", "-c",
                         "from callcenter.web.assets import find_assets; a = find_assets();"
                         " print(a.index); print(*sorted(a.vendor.values()), sep='\\n')"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index, *vendor = proc.stdout.split()
    assert index.startswith(f"{VENV}/lib/python3") and index.endswith("/callcenter/web/static/index.html")
    assert [Path(v).name for v in vendor] == ["bootstrap.min.css", "vue.global.prod.js"]
    for path in (index, *vendor):
        assert deployed.path(path).read_bytes()
    assert "CALLCENTER_STATIC_DIR" not in deployed.path("/etc/callcenter/callcenter.env").read_text()


def test_logrotate_accepts_the_report_config(deployed):
    conf = deployed.path("/etc/logrotate.d/callcenter")
    assert _mode(conf) == 0o644
    stanzas = [line for line in conf.read_text().splitlines() if line.rstrip().endswith("{")]
    assert any("/var/lib/callcenter/report.csv" in line.split() for line in stanzas), stanzas
    proc = deployed.run(["chroot", str(deployed.root), "logrotate", "--debug",
                         "/etc/logrotate.d/callcenter"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "error" not in out.lower(), out


def test_asterisk_role_fails_where_asterisk_cannot_be_installed(deployed, tmp_path):
    # Without asterisk_skip_if_unavailable (the default), a host with no
    # Asterisk package stops the deployment instead of silently skipping it.
    if deployed.scenario != "asterisk":
        pytest.skip("the existing-pbx root has an /etc/asterisk of its own")
    playbook = tmp_path / "asterisk.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Asterisk only", "hosts": "callcenter", "become": True,
        "roles": [{"role": str(ANSIBLE_DIR / "roles" / "asterisk")}],
    }]))
    proc = rootfs.run_in_root(
        deployed.root,
        [tool("ansible-playbook"), str(playbook), "-i", str(deployed.inventory),
         "-e", "asterisk_skip_if_unavailable=false"],
        env=deployed.env, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'No installable package "asterisk" on this host' in out, out[-3000:]
    assert not deployed.path("/etc/asterisk").exists()


def test_nothing_left_running_in_the_root(deployed):
    assert rootfs.kill_processes_in(deployed.root) == []


def test_queue_log_readable_by_the_service_user_alone(deployed):
    """--queue-log is set where Asterisk's log directory is on the host, and the
    service's user (only it) can read the log by ACL, rotated files included;
    Asterisk's own owner and modes are untouched."""
    env = deployed.path("/etc/callcenter/callcenter.env").read_text()
    if deployed.scenario == "asterisk":
        # Debian 12 has no Asterisk: no log directory here, so no --queue-log.
        assert "CALLCENTER_QUEUE_LOG" not in env
        return
    assert "CALLCENTER_QUEUE_LOG=/var/log/asterisk/queue_log\n" in env
    logs = deployed.path("/var/log/asterisk")
    for path, mode in ((logs, 0o750), (logs / "queue_log", 0o640)):
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ASTERISK_UID, ASTERISK_UID, mode)
    # A file Asterisk (or logrotate) creates later, e.g. after a rotation.
    fd = os.open(logs / "queue_log.new", os.O_CREAT | os.O_WRONLY, 0o640)
    os.write(fd, QUEUE_LOG)
    os.close(fd)
    os.chown(logs / "queue_log.new", ASTERISK_UID, ASTERISK_UID)
    read = ("from callcenter.queuelog.follow import QueueLogFollower; import sys;"
            " f = QueueLogFollower(sys.argv[1]); print([l.entry.verb for l in f.read()])")
    for name in ("queue_log", "queue_log.new"):
        proc = deployed.run(["chroot", "--userspec=callcenter:callcenter", str(deployed.root),
                             f"{VENV}/bin/python", "-c", read, f"/var/log/asterisk/{name}"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip() == "['QUEUESTART', 'ENTERQUEUE']", proc.stdout + proc.stderr
        other = deployed.run(["chroot", "--userspec=nobody:nogroup", str(deployed.root),
                              "cat", f"/var/log/asterisk/{name}"])
        assert other.returncode != 0  # nobody else gained anything
