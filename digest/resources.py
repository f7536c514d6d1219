"""Files shipped with digest: templates and example subscribers.

In a wheel they are inside the package (`digest/templates`, `digest/examples/…`, put
there by the build); in a checkout or an editable install they are at the top of the
repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent
_IN_PACKAGE = {
    "templates": _PACKAGE / "templates",
    "subscribers": _PACKAGE / "examples" / "subscribers",
}


def builtin_dir(name: str) -> Path:
    """The folder of built-in `templates` or example `subscribers`."""
    packaged = _IN_PACKAGE[name]
    return packaged if packaged.is_dir() else _PACKAGE.parent / name
