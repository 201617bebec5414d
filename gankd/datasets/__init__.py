"""Images, degradations, cached training pools and deterministic evaluation sets.

Registries: ``DATASETS`` (sources of HR images: ``builtin``, ``folder``) from ``*_dataset.py``
modules and ``DEGRADATIONS`` (HR -> generator input) from ``*_degradation.py`` modules.
"""

from gankd.registry import Registry

DATASETS: Registry = Registry("dataset", "gankd.datasets", suffix="_dataset")
DEGRADATIONS: Registry = Registry("degradation", "gankd.datasets", suffix="_degradation")
