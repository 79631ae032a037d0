"""The reference platform server of the protocol: stateful, judged by the
engine as traffic arrives, recorded in SQLite, controllable over HTTP and
from Python. See docs/mock-server.md."""

from facecert.mock_server.config import ServerConfig
from facecert.mock_server.misbehaviours import MISBEHAVIOURS
from facecert.mock_server.server import MockServer

__all__ = ["MISBEHAVIOURS", "MockServer", "ServerConfig"]
