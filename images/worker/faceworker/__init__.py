"""facefactory worker engine: frame-exact video I/O, faces, swapping, metrics. Never imports Airflow."""
from __future__ import annotations

__version__ = "0.1.0"
ENGINE_VERSION = __version__
