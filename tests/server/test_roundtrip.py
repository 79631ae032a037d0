"""Every task of the contract: enqueue -> poll -> downloads -> result ->
stored -> visible in the API, through real HTTP."""

from __future__ import annotations

import httpx
import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.mock_server import MockServer
from tests.server.helpers import errors, local_downloads, poll_body, result_body

TASKS = [t for t in get_contract().tasks().values() if t.result is not None]


@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_task_round_trip(server: MockServer, client: httpx.Client, task) -> None:
    device = f"RT-{task.name}"
    body = example_for(task.schema)
    urls = local_downloads(body, server.asset_url)
    made = client.post(f"/_admin/devices/{device}/tasks", json={"task": body})
    assert made.status_code == 201, made.text
    rid = made.json()["request_id"]
    assert [q["request_id"] for q in client.get(f"/_admin/devices/{device}/queue").json()] == [rid]

    answer = client.post("/taskRequest", json=poll_body(device))
    assert answer.status_code == 200
    sent = answer.json()
    assert sent == {**body, "request_id": rid}
    assert client.get(f"/_admin/devices/{device}/queue").json()[0]["state"] == "awaiting"
    for url in urls:
        assert httpx.get(url).status_code == 200

    ack = client.post("/taskResult", json=result_body(device, sent))
    assert ack.status_code == 200 and ack.json()["code"] == 0
    stored = server.wait_for_result(rid, timeout=2)
    assert stored["request_type"] == task.name and stored["accepted"] == 1
    assert [r["request_id"] for r in client.get("/_admin/results", params={"device_id": device}).json()] == [str(rid)]
    assert [t["state"] for t in client.get("/_admin/tasks", params={"device_id": device}).json()] == ["done"]
    assert client.get(f"/_admin/devices/{device}/queue").json() == []
    assert len(server.downloads()) == len(urls)
    assert errors(server.findings(device)) == set(), server.findings(device)


def test_request_ids_unique_and_increasing_and_fifo(server: MockServer, client: httpx.Client) -> None:
    names = ["server/tasks/getDevStatus", "server/tasks/deleteUser", "server/tasks/getLogFile"]
    rids = [server.enqueue("FIFO", example_for(n)) for n in names]
    assert rids == sorted(set(rids))
    got = [client.post("/taskRequest", json=poll_body("FIFO")).json() for _ in names]
    assert [g["request_id"] for g in got] == rids
    assert [g["request_type"] for g in got] == [example_for(n)["request_type"] for n in names]
    assert client.post("/taskRequest", json=poll_body("FIFO")).json()["request_type"] == "idleTime"


def test_enqueue_rejects_contract_errors_with_findings(server: MockServer, client: httpx.Client) -> None:
    bad = example_for("server/tasks/setScreenSave")
    bad["start_time"] = 1  # below the table's range
    refused = client.post("/_admin/devices/D/tasks", json={"task": bad})
    assert refused.status_code == 422
    assert {f["rule"] for f in refused.json()["findings"]} == {"MSG-RANGE"}
    assert client.post("/_admin/devices/D/tasks", json={"task": {"request_type": "reboot"}}).status_code == 422
    idle = example_for("server/tasks/idleTime")
    assert client.post("/_admin/devices/D/tasks", json={"task": idle}).status_code == 422
    assert (
        client.post(
            "/_admin/devices/D/tasks", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert server.queue("D") == []


def test_raw_task_is_sent_verbatim(server: MockServer, client: httpx.Client) -> None:
    queued = client.post("/_admin/devices/RAW/tasks", json={"task": "definitely { not json", "raw": True})
    assert queued.status_code == 201
    answer = client.post("/taskRequest", json=poll_body("RAW"))
    assert answer.content == b"definitely { not json"
    assert "MSG-NOT-JSON" in errors(server.findings("RAW"), "server")


def test_tasks_queued_before_first_poll_and_results_refused_from_other_devices(
    server: MockServer, client: httpx.Client
) -> None:
    rid = server.enqueue("OWNER", example_for("server/tasks/getDevStatus"))
    task = client.post("/taskRequest", json=poll_body("OWNER")).json()
    foreign = client.post("/taskResult", json=result_body("THIEF", task))
    assert foreign.status_code == 200 and foreign.json()["code"] != 0
    assert "RESULT-FOREIGN-ACCEPTED" not in errors(server.findings())
    assert "RESULT-UNKNOWN-ID" in errors(server.findings("THIEF"), "device")
    unknown = client.post("/taskResult", json={**result_body("OWNER", task), "request_id": 999_999})
    assert unknown.json()["code"] != 0
    assert client.post("/taskResult", json=result_body("OWNER", task)).json()["code"] == 0
    assert server.wait_for_result(rid, 1)["device_id"] == "OWNER"


def test_result_deadline_is_a_finding(tmp_path) -> None:
    from facecert.mock_server import ServerConfig

    with MockServer(ServerConfig(time_scale=0.002)) as srv:  # result deadline 0.24 s, checked every 50 ms
        rid = srv.enqueue("SLOW", example_for("server/tasks/getDevStatus"))
        httpx.post(srv.url + "/taskRequest", json=poll_body("SLOW"))
        deadline = srv.platform.result_timeout() * 10 + 1
        srv.platform.wait_for(
            lambda: [f for f in srv.findings("SLOW") if f["rule"] == "RESULT-MISSING"], deadline, "RESULT-MISSING"
        )
        assert srv.queue("SLOW")[0]["state"] == "expired"
        assert srv.tasks("SLOW")[0]["state"] == "expired" and srv.tasks("SLOW")[0]["request_id"] == rid


def test_protocol_version_limits_what_can_be_queued() -> None:
    from facecert.mock_server import ServerConfig

    with MockServer(ServerConfig(time_scale=0.05, protocol_version="1.0")) as srv:
        with pytest.raises(Exception) as refused:
            srv.enqueue("OLD", example_for("server/tasks/faceCmd"))
        assert "faceCmd" in str(refused.value)
        assert srv.enqueue("OLD", example_for("server/tasks/getDevStatus")) == 1


def test_field_profile_server_runs(tmp_path) -> None:
    from facecert.mock_server import ServerConfig

    with MockServer(ServerConfig(time_scale=0.05, profile="field")) as srv:
        answer = httpx.post(srv.url + "/taskRequest", json={**poll_body("F"), "time_stamp": None})
        assert answer.status_code == 200
        assert srv.engine.profile is not None and srv.config.profile == "field"
