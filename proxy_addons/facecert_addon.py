"""Entry point for ``mitmdump -s proxy_addons/facecert_addon.py`` (and ``mitmweb -s``).

mitmproxy loads this file by path, as a module outside any package; the
addon itself lives in ``facecert.proxy_addons``, importable when facecert
is installed in the interpreter that runs mitmdump (the project's venv). A
checkout that is not installed still works: the project root is added to
``sys.path`` as a fallback.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import facecert.proxy_addons  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facecert.proxy_addons.addon import FacecertAddon

addons = [FacecertAddon()]
