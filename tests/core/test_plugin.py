"""`twistd callcenter` after a plain, non-editable install, from any directory;
its --help in sections."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plain_install_gives_the_twistd_plugin(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(ROOT)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    (wheel,) = wheels.glob("callcenter-*.whl")
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    site = next((fresh / "lib").glob("python3*/site-packages"))
    # Dependencies come from the test venv (read-only use); the package itself
    # is installed plainly into the fresh one.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    assert (site / "twisted" / "plugins" / "callcenter_plugin.py").exists()
    assert not (site / "twisted" / "__init__.py").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    run = subprocess.run(
        [str(fresh / "bin" / "python"), "-c",
         "import sys; from twisted.scripts.twistd import run; sys.argv=['twistd','callcenter','--help']; run()"],
        cwd="/", env=env, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    out = " ".join(run.stdout.split())
    for option, variable in [
        ("--ami=", "CALLCENTER_AMI]"),
        ("--ami-user=", "CALLCENTER_AMI_USER"),
        ("--ami-secret-file=", "CALLCENTER_AMI_SECRET_FILE"),
        ("--ami-secret=", "CALLCENTER_AMI_SECRET]"),
        ("--listen=", "CALLCENTER_LISTEN"),
        ("--redis=", "CALLCENTER_REDIS]"),
        ("--report=", "CALLCENTER_REPORT"),
        ("--sla=", "CALLCENTER_SLA]"),
        ("--simulate", "CALLCENTER_SIMULATE"),
    ]:
        assert option in out and variable in out, option
    # The installed copy, not the checkout, answered.
    probe = subprocess.run(
        [str(fresh / "bin" / "python"), "-c", "import callcenter; print(callcenter.__file__)"],
        cwd="/", env=env, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.startswith(str(site))
    # The page ships inside the package, for callcenter.web.assets to find.
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "callcenter/web/static/index.html" in names
    assert "callcenter/web/static/vendor/vue.global.prod.js" in names


def test_help_puts_every_option_in_a_section() -> None:
    from callcenter.options import GROUPS, OPTION_GROUPS, Options

    options = {o[0] for o in Options.optParameters} | {o[0] for o in Options.optFlags}
    # Options handled by an opt_ method (repeatable --webhook, the refused --webhook-secret).
    options |= {n[4:].replace("_", "-") for n in dir(Options) if n.startswith("opt_")} - {"help", "version"}
    assert options == set(OPTION_GROUPS), options ^ set(OPTION_GROUPS)
    assert set(OPTION_GROUPS.values()) <= set(GROUPS)
    text = str(Options(environ={}))
    headers = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headers == [f"{g}:" for g in GROUPS]
    for option, group in OPTION_GROUPS.items():
        section = text.split(f"\n{group}:\n", 1)[1].split("\n\n", 1)[0]
        assert f"--{option}" in section, (option, group)
