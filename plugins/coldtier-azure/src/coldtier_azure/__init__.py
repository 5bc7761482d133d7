"""coldtier-azure: Azure Blob Storage for coldtier, as a third party builds a backend.

Installing this distribution declares ``az`` and ``azure`` in the
``coldtier.backends`` entry-point group; ``coldtier.open_archive("az://container/prefix",
account_name=...)`` then returns an archive on :class:`AzureStore`.  Only
coldtier's public names are used (``coldtier``, ``coldtier.store``).
"""

from __future__ import annotations

from .store import OPTIONS, AzureStore

__all__ = ["OPTIONS", "AzureStore", "__version__"]

__version__ = "0.1.0"
