"""Every step definition of the certification plans, as one pytest plugin: the
runner loads it by name (``-p facecert.steps.plugin``, facecert/certify/runner.py),
so an installed facecert needs no conftest.py. The live session (``cert``) and
the per-scenario state (``scn``) come from the plugin the runner hands to
pytest (facecert/certify/plugin.py); step definitions live in the modules
imported here."""

from facecert.steps.common import *  # noqa: F403 - step definitions are fixtures
from facecert.steps.device_steps import *  # noqa: F403
from facecert.steps.security_steps import *  # noqa: F403
from facecert.steps.server_steps import *  # noqa: F403
