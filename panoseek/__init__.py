"""panoseek: embodied 360-degree visual search.

Importing the package registers the Gymnasium environment ids (``panoseek/...-v0``).
"""

__version__ = "0.1.0"

from panoseek import registration as _registration  # noqa: E402

_registration.register_envs()
