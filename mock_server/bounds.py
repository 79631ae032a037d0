"""Bounds of the control API's own parameters: checked by its handlers (:mod:`mock_server.http_admin`),
stated by its document (:mod:`mock_server.openapi`)."""

from __future__ import annotations

MAX_LIMIT = 100_000  # ?limit= of list calls
MAX_THUMBNAIL = 100_000  # ?size= of a capture image: the thumbnail's longest edge, pixels
