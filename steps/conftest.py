"""pytest-bdd wiring for the certification plans. The live session (``cert``)
and the per-scenario state (``scn``) come from the plugin the runner hands to
pytest (facecert/certify/plugin.py); step definitions live in the modules
imported here."""

from steps.common import *  # noqa: F401,F403 - step definitions are fixtures
from steps.device_steps import *  # noqa: F401,F403
from steps.server_steps import *  # noqa: F401,F403
from steps.security_steps import *  # noqa: F401,F403
