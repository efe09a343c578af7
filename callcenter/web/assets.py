"""Where the dashboard's files are: the wheel's package data, or a checkout's static/.

Two layouts hold the same page:

- installed (the wheel): ``callcenter/web/static/`` inside the package, with
  the page's own files at the top and the third-party libraries under
  ``vendor/`` (``setup.py`` copies them there from ``npm ci`` at build time);
- a checkout (development): ``static/`` beside the package, the libraries
  under ``static/node_modules/`` after ``npm ci``.

Standard library only: ``setup.py`` loads this file by path (its build
environment has no Twisted) to copy exactly the files listed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Served from the static directory's top level; anything else there stays private.
PAGE_EXTENSIONS = frozenset({".html", ".js", ".css", ".svg", ".png", ".ico", ".woff2"})
PRIVATE_FILES = frozenset({"package.json", "package-lock.json"})

# URL name under /vendor/ → path inside node_modules (installed by `npm ci`).
VENDOR_FILES = {
    "vue.global.prod.js": ("vue", "dist", "vue.global.prod.js"),
    "bootstrap.min.css": ("bootstrap", "dist", "css", "bootstrap.min.css"),
}

# The package data directory inside callcenter/web/ (the wheel's copy).
PACKAGE_STATIC = "static"
VENDOR_DIR = "vendor"


class MissingAssets(FileNotFoundError):
    """The page or its third-party libraries are not where they should be."""


@dataclass(frozen=True)
class PageAssets:
    """The files the page serves: URL name → absolute path."""

    directory: str
    index: str
    page: dict[str, str]  # top-level files: app.js, app.css, favicon.svg, ...
    vendor: dict[str, str]  # served under /vendor/


def page_files(directory: str) -> list[str]:
    """Names of the top-level files of ``directory`` that the page may serve."""
    return [
        name
        for name in sorted(os.listdir(directory))
        if os.path.isfile(os.path.join(directory, name))
        and os.path.splitext(name)[1] in PAGE_EXTENSIONS
        and not name.startswith(".")
        and name not in PRIVATE_FILES
    ]


def _checkout_static() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "static")


def _package_static() -> str | None:
    """The wheel's copy, if the package is installed as plain files."""
    from importlib.resources import files

    root = files("callcenter.web") / PACKAGE_STATIC
    # A zip import would need extracting; the package is always installed as
    # files by pip, so anything else counts as absent.
    path = os.fspath(root) if isinstance(root, os.PathLike) else None
    if path and os.path.isfile(os.path.join(path, "index.html")):
        return path
    return None


def default_static_dir() -> str:
    """The installed copy when there is one, else the checkout's static/."""
    return _package_static() or _checkout_static()


def find_assets(static_dir: str | None = None) -> PageAssets:
    """Every file of the page in ``static_dir`` (default: ``default_static_dir()``).

    A library may be under ``vendor/`` (installed layout) or
    ``node_modules/`` (checkout layout).  Raises ``MissingAssets`` naming
    the first missing file and how to get it.
    """
    directory = os.path.abspath(static_dir or default_static_dir())
    index = os.path.join(directory, "index.html")
    if not os.path.isfile(index):
        raise MissingAssets(f"dashboard page missing: {index}")
    page = {name: os.path.join(directory, name) for name in page_files(directory)}
    vendor = {}
    for name, parts in VENDOR_FILES.items():
        candidates = [
            os.path.join(directory, VENDOR_DIR, name),
            os.path.join(directory, "node_modules", *parts),
        ]
        found = next((p for p in candidates if os.path.isfile(p)), None)
        if found is None:
            raise MissingAssets(
                f"dashboard library missing: {name} (neither {candidates[0]} nor"
                f" {candidates[1]}: run `npm ci` in {directory}, or install a wheel built with npm)"
            )
        vendor[name] = found
    return PageAssets(directory, index, page, vendor)
