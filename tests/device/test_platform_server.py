"""setPlatformServer: the result goes to the old server, then the device polls
the new one (serverAddr has no scheme; http:// is implied; a prefix is kept)."""

from __future__ import annotations

from urllib.parse import urlsplit

from facecert.mock_device import Device
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_server import MockServer, ServerConfig
from tests.device.scenarios import deadline, wait
from tests.support import SCALE


def test_device_moves_to_the_second_server(server: MockServer, make_device) -> None:
    with MockServer(ServerConfig(time_scale=SCALE, prefix="/platform/v2")) as second:
        dev: Device = make_device("move", start=False)
        device_id = dev.cfg.device_id
        address = urlsplit(second.url)
        rid = server.enqueue(
            device_id, {"request_type": "setPlatformServer", "serverAddr": f"{address.netloc}{address.path}"}
        )
        dev.start()
        result = server.wait_for_result(rid, deadline(dev))
        assert result["code"] == 0
        second.wait_for_poll(device_id, deadline(dev))
        dev.capture_now("face")
        second.wait_for_capture(device_id, deadline(dev))
        polls_on_first = len([e for e in server.exchanges(device_id) if e["endpoint"] == "taskRequest"])
        wait(dev, lambda: dev.stats.polls >= polls_on_first + 2, "two polls on the new server")
        dev.stop()
        assert len([e for e in server.exchanges(device_id) if e["endpoint"] == "taskRequest"]) == polls_on_first
        assert dev.servers == [server.url, second.url]
        assert not server.captures(device_id)
    assert not device_errors(judge_device(dev).findings)
