"""Resume transfer (断网续传) through an outage window: captures kept on disk,
then delivered in order, none lost, none duplicated; dropped when disabled."""

from __future__ import annotations

from pathlib import Path

import pytest

from facecert.mock_device import Device
from facecert.mock_device.spool import Spool
from facecert.mock_server import MockServer
from tests.device.scenarios import outage, wait


@pytest.mark.parametrize("mode", ["drop", "503"])
def test_outage_buffers_then_delivers_in_order(mode: str, server: MockServer, make_device, tmp_path: Path) -> None:
    dev: Device = make_device(f"resume-{mode}", spool_dir=tmp_path)
    wait(dev, lambda: dev.stats.polls >= 1, "the first poll")
    before = dev.capture_now("face")
    server.set_fault("outage", device_id=dev.cfg.device_id, mode=mode)
    during = [dev.capture_now("stranger") for _ in range(4)]
    assert len(dev.spool) == 4 and len(list((tmp_path / dev.cfg.device_id).glob("*.json"))) == 4
    server.clear_faults()
    wait(dev, lambda: len(dev.spool) == 0, "the spool to drain", intervals=10)
    after = dev.capture_now("vehicle")
    dev.stop()

    accepted = [c["frpic_name"] for c in server.captures(dev.cfg.device_id) if c["accepted"]]
    expected = [c["frpic_name"] for c in (before, *during, after)]
    assert accepted == expected, "every capture once, in the order made"
    assert dev.stats.captures_sent == 6 and dev.stats.captures_dropped == 0


def test_disabled_resume_transfer_drops_and_counts(server: MockServer, make_device) -> None:
    dev: Device = make_device("noresume", resume_transfer=False)
    made = outage(server, dev, captures=3)
    dev.stop()
    assert dev.stats.captures_dropped == 3 and len(dev.spool) == 0
    delivered = {c["frpic_name"] for c in server.captures(dev.cfg.device_id)}
    assert not delivered & {c["frpic_name"] for c in made}


def test_set_resume_transfer_task_switches_it(server: MockServer, make_device) -> None:
    dev: Device = make_device("switch", start=False)
    server.enqueue(dev.cfg.device_id, {"request_type": "setResumeTransfer", "enable": 0})
    dev.start()
    wait(dev, lambda: dev.stats.results >= 1, "the result")
    outage(server, dev, captures=2)
    dev.stop()
    assert dev.stats.captures_dropped == 2


def test_spool_survives_a_restart_in_order(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    for n in range(3):
        first.push({"n": n})
    first.pop()
    second = Spool(tmp_path)  # the device restarted
    second.push({"n": 3})
    seen = []
    while (record := second.peek()) is not None:
        seen.append(record["n"])
        second.pop()
    assert seen == [1, 2, 3]


def test_unreadable_spool_record_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.push({"n": 1})
    (tmp_path / "000000000000.json").write_text("{half a rec", encoding="utf-8")
    spool.push({"n": 2})
    assert spool.peek() == {"n": 2}
    more = Spool(tmp_path)
    assert len(more) == 1


@pytest.mark.parametrize("on_disk", [True, False])
def test_a_full_spool_drops_its_oldest_record(tmp_path: Path, on_disk: bool) -> None:
    spool = Spool(tmp_path if on_disk else None, max_records=3)
    dropped = [spool.push({"n": n}) for n in range(7)]
    assert dropped == [0, 0, 0, 1, 1, 1, 1] and len(spool) == 3
    seen = []
    while (record := spool.peek()) is not None:
        seen.append(record["n"])
        spool.pop()
    assert seen == [4, 5, 6]
