"""The one cache key: the name of a cached artefact (evaluation set, training pool, teacher
outputs over a pool, a trained teacher or supervised student) derived from everything it
depends on.

``cache_key(doc)`` is ``DIGITS`` hex digits of the sha256 of ``doc`` as JSON with sorted keys
(dataclasses as plain dicts, anything JSON cannot hold by its ``str``). Same inputs, same key in
any process and any key order; a changed input is a new key, so a stale entry is never read,
only left behind.

This is the form the trained networks' key always had, so teachers and supervised students
trained before keep their names. Evaluation sets, training pools and teacher outputs had keys
of their own (24 and 20 digits, other JSON forms): theirs changed value once, each of those
caches is rebuilt once under its new name, and no result changes (a cache holds what the same
inputs compute anyway).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gankd.config import to_dict

#: 64 bits: no collision among the few thousand entries a cache folder ever holds, and short
#: folder names
DIGITS = 16


def cache_key(doc: Mapping[str, Any]) -> str:
    """``DIGITS`` hex digits of the sha256 of ``doc`` as sorted-key JSON."""
    blob = json.dumps(to_dict(dict(doc)), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:DIGITS]
