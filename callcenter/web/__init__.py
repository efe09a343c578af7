"""The supervisors' dashboard: the page, its assets and the ``/callcenter`` WebSocket."""

from callcenter.web.site import MissingAssets, make_site

__all__ = ["MissingAssets", "make_site"]
