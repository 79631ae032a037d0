"""Every task of the catalogue, run by the device against the real mock
server: its effect on the device and what the server stored."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from facecert.core.contract import get_contract
from facecert.mock_device import Device
from facecert.mock_device.device import idle_task_name
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_device.media import capture_jpeg, tiny_png
from facecert.mock_device.tasks import (
    BAD_PARAMETER,
    CURL_HTTP_RETURNED_ERROR,
    FACE_IMAGE_INVALID,
    FILE_INVALID,
    HANDLERS,
    USER_EXISTS,
    USER_INFO_TOO_LONG,
)
from facecert.mock_server import MockServer
from tests.device.scenarios import deadline, more_polls
from tests.support import FIRMWARE_VERSION, GOOD_FIRMWARE

FACE_B64 = base64.b64encode(capture_jpeg(3)).decode()
DAY = 86_400


def user(uid: str, list_no: int = 2, **extra: Any) -> dict[str, Any]:
    return {"user_id": uid, "user_info": {"name": f"user {uid}", "sex": 1}, "user_list": list_no, **extra}


@dataclass
class Case:
    task: Callable[[MockServer], dict[str, Any]]
    check: Callable[[Device, MockServer, dict[str, Any]], None]
    setup: list[Callable[[MockServer], dict[str, Any]]] = field(default_factory=list)
    code: int = 0
    raw: bool = False  # queued as given (a task the contract refuses, to see the device refuse it too)


def _check_add(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert {u.user_id for u in dev.faces} == {"u1", "u2"}
    assert dev.faces.get("u1").image == srv_asset(srv, "face.jpg")
    assert dev.faces.get("u2").image == capture_jpeg(3)
    assert result["resp_list"] == [{"user_id": "u1", "code": 0}, {"user_id": "u2", "code": 0}]
    assert any(d["name"] == "face.jpg" for d in srv.downloads())


def _check_add_existing(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert result["resp_list"] == [{"user_id": "u1", "code": USER_EXISTS}, {"user_id": "u3", "code": 0}]
    assert dev.faces.get("u1").user_info["name"] == "user u1"  # unchanged
    assert "u3" in dev.faces


def _check_update(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.faces.get("u1").user_info["name"] == "renamed"
    assert "u9" in dev.faces  # updateUser adds a missing user


def _check_delete(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert "u1" not in dev.faces


def _check_del_list(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert {u.user_id for u in dev.faces} == {"black"}
    assert sorted(r["user_id"] for r in result["resp_list"]) == ["w1", "w2"]


def _check_devtime(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert abs(dev.clock() - (time.time() + DAY)) < 5
    more_polls(dev, 1)
    stamps = [
        e["request_json"].get("time_stamp")
        for e in srv.exchanges(dev.cfg.device_id)
        if e["endpoint"] == "taskRequest" and isinstance(e["request_json"], dict)
    ]
    assert stamps[-1] > time.time() + DAY - 5, "the next poll carries the new clock"


def _check_screensave(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.screen_savers == {"image_1": srv_asset(srv, "screensaver.png")}
    assert dev.screen_saver_settings["start_time"] == 10


def _check_upgrade(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.cfg.software_version == FIRMWARE_VERSION
    more_polls(dev, 1)
    last = [e for e in srv.exchanges(dev.cfg.device_id) if e["endpoint"] == "taskRequest"][-1]
    assert last["request_json"]["software_version"] == FIRMWARE_VERSION


def _check_upgrade_refused(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.cfg.software_version != FIRMWARE_VERSION
    assert "firmware" in result["log"]


def _check_log(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.cfg.device_id in result["log_info"] and "starting" in result["log_info"]


def _check_status(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert result["total_face"] == len(dev.faces) == 1
    assert result["main_ver"] == dev.cfg.software_version
    assert result["ai_version"] == dev.cfg.lib_ai_version


def _check_resume(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.resume_transfer is False


def _check_facecmd(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    srv.wait_for_capture(dev.cfg.device_id, deadline(dev))
    assert dev.wait_until(lambda: dev.stats.captures_sent == 1, deadline(dev))


def _check_faceconfig(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert dev.face_config["FaceQuality"] == 5


def _check_faceconfig_refused(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    assert "/FaceQuality" in result["log"] and "FaceQuality" not in dev.face_config


def _check_platform(dev: Device, srv: MockServer, result: dict[str, Any]) -> None:
    """The move itself is tested with two servers in test_platform_server.py; here the address is kept."""
    assert dev.ws_server == "127.0.0.1:9"


def srv_asset(srv: MockServer, name: str) -> bytes:
    asset = srv.platform.assets.resolve(name)
    assert asset is not None, name
    with asset.open() as fh:
        return fh.read()


CASES: dict[str, Case] = {
    "addUser": Case(
        lambda s: {
            "request_type": "addUser",
            "user_list": [
                user("u1", image_type="URL", image_content=s.asset_url("face.jpg")),
                user("u2", image_type="image", image_content=FACE_B64),
            ],
        },
        _check_add,
    ),
    "addUser-existing": Case(
        lambda s: {"request_type": "addUser", "user_list": [user("u1"), user("u3")]},
        _check_add_existing,
        code=USER_EXISTS,
        setup=[lambda s: {"request_type": "addUser", "user_list": [user("u1")]}],
    ),
    "updateUser": Case(
        lambda s: {
            "request_type": "updateUser",
            "user_list": [{**user("u1"), "user_info": {"name": "renamed"}}, user("u9")],
        },
        _check_update,
        setup=[lambda s: {"request_type": "addUser", "user_list": [user("u1")]}],
    ),
    "deleteUser": Case(
        lambda s: {"request_type": "deleteUser", "user_id": "u1"},
        _check_delete,
        setup=[lambda s: {"request_type": "addUser", "user_list": [user("u1")]}],
    ),
    "delUserList": Case(
        lambda s: {"request_type": "delUserList", "user_list": 2},
        _check_del_list,
        setup=[lambda s: {"request_type": "addUser", "user_list": [user("w1"), user("black", 1), user("w2")]}],
    ),
    "setDevTime": Case(lambda s: {"request_type": "setDevTime", "time_stamp": int(time.time()) + DAY}, _check_devtime),
    "setScreenSave": Case(
        lambda s: {
            "request_type": "setScreenSave",
            "enable": 1,
            "start_time": 10,
            "image_1": s.asset_url("screensaver.png"),
            "image_2": "",
        },
        _check_screensave,
    ),
    "setScreenSave-not-png": Case(
        lambda s: {"request_type": "setScreenSave", "enable": 1, "image_1": s.asset_url("face.jpg")},
        lambda d, s, r: None if not d.screen_savers else pytest.fail("kept a JPEG"),
        code=FILE_INVALID,
    ),
    "upgrade": Case(lambda s: {"request_type": "upgrade", "URL": s.asset_url(GOOD_FIRMWARE)}, _check_upgrade),
    "upgrade-bad-file": Case(
        lambda s: {"request_type": "upgrade", "URL": s.asset_url("firmware.bin")},
        _check_upgrade_refused,
        code=FILE_INVALID,
    ),
    "upgrade-download-fails": Case(
        lambda s: {"request_type": "upgrade", "URL": s.asset_url("no-such-file.bin")},
        lambda d, s, r: None,
        code=CURL_HTTP_RETURNED_ERROR,
    ),
    "setScreenSave-start-time-8": Case(
        lambda s: {
            "request_type": "setScreenSave",
            "request_id": 990002,
            "enable": 1,
            "start_time": 8,
        },  # the document's own example (errata #7)
        lambda d, s, r: None if "/start_time" in r["log"] else pytest.fail(r["log"]),
        code=BAD_PARAMETER,
        raw=True,
    ),
    "addUser-image-not-jpeg": Case(
        lambda s: {
            "request_type": "addUser",
            "request_id": 990003,
            "user_list": [user("png", image_type="image", image_content=base64.b64encode(tiny_png()).decode())],
        },
        lambda d, s, r: None if "png" not in d.faces else pytest.fail("stored a PNG face"),
        code=FACE_IMAGE_INVALID,
        raw=True,
    ),
    "addUser-user-info-too-long": Case(
        lambda s: {
            "request_type": "addUser",
            "request_id": 990004,
            "user_list": [{**user("long"), "user_info": {"other": "x" * 300}}, user("short")],
        },
        lambda d, s, r: (
            None
            if r["resp_list"] == [{"user_id": "long", "code": USER_INFO_TOO_LONG}, {"user_id": "short", "code": 0}]
            else pytest.fail(str(r))
        ),
        code=USER_INFO_TOO_LONG,
        raw=True,
    ),
    "getLogFile": Case(lambda s: {"request_type": "getLogFile", "log_name": "device.log"}, _check_log),
    "getDevStatus": Case(
        lambda s: {"request_type": "getDevStatus"},
        _check_status,
        setup=[lambda s: {"request_type": "addUser", "user_list": [user("u1")]}],
    ),
    "setResumeTransfer": Case(lambda s: {"request_type": "setResumeTransfer", "enable": 0}, _check_resume),
    "setPlatformServer": Case(
        lambda s: {"request_type": "setPlatformServer", "wsServerAddr": "127.0.0.1:9"}, _check_platform
    ),
    "faceCmd": Case(lambda s: {"request_type": "faceCmd"}, _check_facecmd),
    "SetFaceConfig": Case(
        lambda s: {"request_type": "SetFaceConfig", "FaceQuality": 5, "LivenessThreshold": 0.5}, _check_faceconfig
    ),
    "SetFaceConfig-out-of-range": Case(
        lambda s: {"request_type": "SetFaceConfig", "request_id": 990001, "FaceQuality": 99},
        _check_faceconfig_refused,
        code=BAD_PARAMETER,
        raw=True,
    ),
}


def test_every_catalogue_task_has_a_handler_and_a_case() -> None:
    tasks = set(get_contract().all_tasks) - {idle_task_name()}
    assert set(HANDLERS) == tasks
    assert tasks <= {name.split("-")[0] for name in CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_task_effect_on_both_sides(name: str, server: MockServer, make_device) -> None:
    case = CASES[name]
    dev: Device = make_device(name, start=False)
    device_id = dev.cfg.device_id
    for setup in case.setup:
        server.enqueue(device_id, setup(server))
    rid = server.enqueue(device_id, case.task(server), raw=case.raw)
    dev.start()
    stored = server.wait_for_result(rid, deadline(dev)) if not case.raw else _wait_raw_result(server, dev, rid)
    assert stored["code"] == case.code, stored
    sent = next(r for r in dev.results if r["request_id"] == rid)
    case.check(dev, server, sent)
    dev.stop()
    errors = device_errors(judge_device(dev).findings)
    assert not errors, "\n".join(f.line() for f in errors)


def _wait_raw_result(srv: MockServer, dev: Device, rid: int) -> dict[str, Any]:
    """A result for a task the contract refuses: the server may not accept it, so wait on the device."""
    assert dev.wait_until(lambda: any(r["request_id"] == rid for r in dev.results), deadline(dev))
    return next(r for r in dev.results if r["request_id"] == rid)
