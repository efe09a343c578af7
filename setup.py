"""Build hook: the wheel carries the dashboard page, its libraries included.

Metadata is in setup.cfg.  ``build_py`` (run by ``pip wheel .``, ``python -m
build`` and ``pip install .``) also runs ``npm ci`` on static/package.json's
pinned libraries, in a scratch directory, and copies exactly the files the
page serves into the package as ``callcenter/web/static/`` (the page's own
files, and Vue's and Bootstrap's under ``vendor/``).  The installed service
finds them with importlib.resources and needs no Node.js.  An editable
install (``make setup``) copies nothing: it serves the checkout's static/.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
NPM_MANIFESTS = ("package.json", "package-lock.json")
NO_NPM = (
    "building the callcenter wheel needs npm: it puts the dashboard's libraries "
    "(pinned in static/package-lock.json) into the wheel. Install Node.js and npm "
    "(e.g. apt-get install npm) on the build machine and build again; the machine "
    "that installs the wheel needs neither."
)


def _assets_module():
    # callcenter/web/assets.py lists the served files and imports only the
    # standard library: loaded by path, since the build has no Twisted.
    spec = importlib.util.spec_from_file_location(
        "_callcenter_assets", HERE / "callcenter" / "web" / "assets.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildPyWithPage(build_py):
    """build_py, plus the page and its npm libraries as package data."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        assets = _assets_module()
        npm_modules = self._npm_ci()
        target = Path(self.build_lib, "callcenter", "web", assets.PACKAGE_STATIC)
        if target.exists():
            shutil.rmtree(target)
        (target / assets.VENDOR_DIR).mkdir(parents=True)
        for name in assets.page_files(str(STATIC)):
            self.copy_file(str(STATIC / name), str(target / name))
        for name, parts in assets.VENDOR_FILES.items():
            self.copy_file(str(npm_modules.joinpath(*parts)), str(target / assets.VENDOR_DIR / name))

    def _npm_ci(self) -> Path:
        """node_modules of a clean ``npm ci`` of static/'s manifests."""
        npm = shutil.which("npm")
        if npm is None:
            raise SetupError(NO_NPM)  # setuptools prints it as "error: ..."
        work = Path(self.get_finalized_command("build").build_temp, "npm")
        work.mkdir(parents=True, exist_ok=True)
        for name in NPM_MANIFESTS:
            shutil.copyfile(STATIC / name, work / name)
        # --ignore-scripts: the libraries are only files to copy, nothing to run.
        argv = [npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund",
                "--loglevel=error"]
        self.announce(f"running {' '.join(argv)} in {work}", level=2)
        proc = subprocess.run(argv, cwd=work, env=dict(os.environ, NO_UPDATE_NOTIFIER="1"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise SetupError(f"npm ci failed in {work} (exit {proc.returncode}):\n{proc.stdout}")
        return work / "node_modules"


setup(cmdclass={"build_py": BuildPyWithPage})
