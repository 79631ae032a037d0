"""Keep the garbage collector's pauses off the protocol's clock.

A peer that runs for a while (a certification, ``facecert serve``, ``facecert device``, a test
worker) has imported some 100,000-200,000 objects by the time it starts talking: pytest,
pytest-bdd, Starlette, httpx, the contract and its compiled schemas. They live as long as the
process, yet every full collection walks them all again, with every thread stopped: 50-150 ms on
this 2-core machine, more under load. At time scale 0.05 that is the whole of the busy cadence's
slack (0.25 s ± 25 %), so a pause in the process that hosts both the mock server and our
reference device made CADENCE-TASK fire on a correct device. ``gc.freeze()`` moves what is alive
once started into the permanent generation, which collections skip; what the run allocates later
is collected as before (see the ``gc.freeze`` docs: "use it after start-up")."""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then exempt everything still alive from later collections; call it after the
    imports and set-up, before the protocol's clock starts. Returns how many objects it froze."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def settle_once() -> int:
    """:func:`settle` unless something in this process already froze its heap: for a hook that can run
    again mid-traffic (mitmproxy fires ``running`` anew when it reloads a changed script), where a second
    full collection would pause live flows and freeze them, their cycles never freed."""
    return gc.get_freeze_count() or settle()
