"""The device's face library: what addUser/updateUser/deleteUser/delUserList
change and getDevStatus counts. In memory; thread-safe because the sync
facade reads it from the test thread while the device's loop writes it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaceUser:
    user_id: str
    user_list: int  # list number: 1 blacklist, 2 whitelist (errata #3)
    user_info: dict[str, Any] = field(default_factory=dict)
    user_type: int = 0
    access_card: int | None = None
    group: int | None = None
    image: bytes | None = None  # the face picture, when one was given


class FaceDB:
    def __init__(self) -> None:
        self._users: dict[str, FaceUser] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def __iter__(self) -> Iterator[FaceUser]:
        with self._lock:
            return iter(list(self._users.values()))

    def get(self, user_id: str) -> FaceUser | None:
        return self._users.get(user_id)

    def add(self, user: FaceUser) -> bool:
        """False when the id exists (addUser fails for that user)."""
        with self._lock:
            if user.user_id in self._users:
                return False
            self._users[user.user_id] = user
            return True

    def upsert(self, user: FaceUser) -> None:
        with self._lock:
            self._users[user.user_id] = user

    def delete(self, user_id: str) -> bool:
        with self._lock:
            return self._users.pop(user_id, None) is not None

    def delete_list(self, list_no: int) -> list[str]:
        """Remove every user of one list; the ids removed, in insertion order."""
        with self._lock:
            gone = [uid for uid, user in self._users.items() if user.user_list == list_no]
            for uid in gone:
                del self._users[uid]
            return gone
