"""A simulated route for gpsReport: drive, stop, drive, so that both halves of
the §1.2 rule are exercised (a report after more than 20 m, or after more
than 5 s standing still)."""

from __future__ import annotations

import math
import random

_EARTH_M = 6_371_008.8


class Route:
    """Positions one simulated second apart: ``phase`` seconds moving at
    ``speed_mps``, then ``phase`` seconds standing, turning a little each time."""

    def __init__(
        self, lat: float = 22.5431, lon: float = 114.0579, speed_mps: float = 8.0, phase: int = 12, seed: int = 0
    ) -> None:
        self.lat, self.lon = lat, lon
        self.speed = speed_mps
        self.phase = phase
        self.rng = random.Random(seed)
        self.heading = self.rng.uniform(0, 360)
        self.tick = 0

    def step(self, moving: bool | None = None) -> tuple[float, float]:
        """Advance one simulated second; the new position (rounded to ~0.1 m, as sent)."""
        self.tick += 1
        if moving is None:
            moving = (self.tick // self.phase) % 2 == 0
        if moving:
            if self.tick % self.phase == 0:
                self.heading = (self.heading + self.rng.uniform(-60, 60)) % 360
            north = self.speed * math.cos(math.radians(self.heading))
            east = self.speed * math.sin(math.radians(self.heading))
            self.lat += math.degrees(north / _EARTH_M)
            self.lon += math.degrees(east / (_EARTH_M * math.cos(math.radians(self.lat))))
        self.lat, self.lon = round(self.lat, 6), round(self.lon, 6)
        return self.lat, self.lon
