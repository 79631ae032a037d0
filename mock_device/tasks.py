"""What the device does with each task of the document, and what it reports.

Every handler gets a task that already passed its schema (the device
validates through the contract first; a malformed task never reaches a
handler) and returns an :class:`Outcome`: the taskResult's code, log and
per-task extras, and what to do once the result is posted (setPlatformServer
moves to the new server, faceCmd uploads its capture).

Handlers are sans-I/O (mock_device.flow): one that needs the network (a download, faceCmd's
capture) is a generator that ``yield from``s the device's steps and returns its Outcome; one
that does not simply returns it. Handlers see the device through :class:`TaskHost` (what the
device core offers them), so this module imports no driver and no core.

Result codes follow what devices in the field send (NOTES.md): 0 success,
1..100 libcurl codes when a download failed, -101..-124 face-library errors,
201..210 device errors. The ones used here are listed below and in
docs/mock-device.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from facecert.core.contract import get_contract
from facecert.core.rules.message import Issue
from facecert.mock_device.config import DeviceConfig, server_url
from facecert.mock_device.facedb import FaceDB, FaceUser
from facecert.mock_device.firmware import FirmwareError, verify_firmware
from facecert.mock_device.flow import Flow
from facecert.mock_device.media import check_image

OK = 0
CURL_COULDNT_CONNECT = 7  # libcurl CURLE_COULDNT_CONNECT
CURL_HTTP_RETURNED_ERROR = 22  # libcurl CURLE_HTTP_RETURNED_ERROR
CURL_OPERATION_TIMEDOUT = 28  # libcurl CURLE_OPERATION_TIMEDOUT
CURL_FILESIZE_EXCEEDED = 63  # libcurl CURLE_FILESIZE_EXCEEDED (CURLOPT_MAXFILESIZE): the download was too large
USER_EXISTS = -101
USER_NOT_FOUND = -102
FACE_IMAGE_INVALID = -103
USER_INFO_TOO_LONG = -104  # user_info over its 256 bytes (errata #12)
COMMAND_UNKNOWN = 202
BAD_PARAMETER = 203
FILE_INVALID = 204  # downloaded file is not what the task needs (not a PNG, not a firmware image)

CODES = {
    OK: "success",
    CURL_COULDNT_CONNECT: "download failed: could not connect",
    CURL_HTTP_RETURNED_ERROR: "download failed: HTTP error",
    CURL_OPERATION_TIMEDOUT: "download timed out",
    CURL_FILESIZE_EXCEEDED: "download failed: file too large",
    USER_EXISTS: "user_id already exists",
    USER_NOT_FOUND: "user_id not found",
    FACE_IMAGE_INVALID: "face image missing or not a JPEG",
    USER_INFO_TOO_LONG: "user_info too long",
    COMMAND_UNKNOWN: "command does not exist",
    BAD_PARAMETER: "parameter missing or out of range",
    FILE_INVALID: "downloaded file is invalid",
}


@dataclass
class Outcome:
    code: int
    log: str
    extras: dict[str, Any] = field(default_factory=dict)
    after: Callable[[], Flow[Any] | None] | None = None  # runs once the taskResult is posted (a flow, or plain)


class TaskHost(Protocol):
    """What a handler may use of the device (mock_device.core.DeviceCore is one)."""

    cfg: DeviceConfig
    faces: FaceDB
    server: str
    resume_transfer: bool
    screen_savers: dict[str, bytes]
    screen_saver_settings: dict[str, Any]
    face_config: dict[str, Any]
    first_face_count: int | None
    ws_server: str | None

    def log(self, message: str) -> None: ...
    def log_text(self) -> str: ...
    def set_clock(self, epoch_s: float) -> None: ...
    def move_to(self, url: str) -> None: ...
    def download(self, url: str) -> Flow[bytes]: ...
    def capture(self, kind: str = "face") -> Flow[dict[str, Any]]: ...
    def content_problems(self, name: str, task: dict[str, Any]) -> list[Issue]: ...
    def user_defaults(self, name: str) -> dict[str, Any]: ...
    def task_properties(self, name: str) -> dict[str, Any]: ...


class DownloadFailed(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


def done(name: str, extras: dict[str, Any] | None = None) -> Outcome:
    return Outcome(OK, f"'{name}' success!", extras or {})


def failed(name: str, code: int, why: str, extras: dict[str, Any] | None = None) -> Outcome:
    return Outcome(code, f"'{name}' failed: {why}", extras or {})


# ---- users ----------------------------------------------------------------------
def _face_image(dev: TaskHost, user: dict[str, Any]) -> Flow[bytes | None]:
    """The user's picture: downloaded (URL) or decoded (image); None when none was given."""
    kind, content = user.get("image_type"), user.get("image_content")
    if not content:
        return None
    if kind == "URL" or (kind is None and str(content).startswith(("http://", "https://"))):
        data = yield from dev.download(content)
    else:
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise DownloadFailed(FACE_IMAGE_INVALID, "image_content is not base64") from None
    why = check_image(data, "image/jpeg")
    if why:
        raise DownloadFailed(FACE_IMAGE_INVALID, f"face image is {why}")
    return data


def _face_user(user: dict[str, Any], image: bytes | None, schema_defaults: dict[str, Any]) -> FaceUser:
    return FaceUser(
        user_id=user["user_id"],
        user_list=user.get("user_list", schema_defaults["user_list"]),  # the schema's default: the whitelist
        user_info=dict(user.get("user_info") or {}),
        user_type=user.get("user_type", 0),
        access_card=user.get("access_card"),
        group=user.get("group"),
        image=image,
    )


def _users(dev: TaskHost, task: dict[str, Any], upsert: bool) -> Flow[Outcome]:
    name = task["request_type"]
    defaults = dev.user_defaults(name)
    refused = _refused_users(dev.content_problems(name, task))
    resp_list = []
    for index, user in enumerate(task["user_list"]):
        code = refused.get(index, OK)
        if code != OK:
            dev.log(f"{name}: user {user['user_id']} refused ({CODES[code]})")
        elif not upsert and user["user_id"] in dev.faces:
            code = USER_EXISTS
        else:
            try:
                image = yield from _face_image(dev, user)
            except DownloadFailed as exc:
                dev.log(f"{name}: user {user['user_id']}: {exc}")
                code = exc.code
            else:
                record = _face_user(user, image, defaults)
                if upsert:
                    dev.faces.upsert(record)
                elif not dev.faces.add(record):
                    code = USER_EXISTS
        resp_list.append({"user_id": user["user_id"], "code": code})
    bad = [r for r in resp_list if r["code"] != OK]
    if bad:
        return failed(name, bad[0]["code"], f"{len(bad)} of {len(resp_list)} user(s) failed", {"resp_list": resp_list})
    return done(name, {"resp_list": resp_list})


def _refused_users(problems: list[Any]) -> dict[int, int]:
    """Index in user_list -> code, from the content checks (a bad image, an oversized user_info)."""
    refused: dict[int, int] = {}
    for problem in problems:
        parts = problem.pointer.split("/")
        if len(parts) > 2 and parts[1] == "user_list" and parts[2].isdigit():
            code = USER_INFO_TOO_LONG if problem.rule == "USERINFO-SIZE" else FACE_IMAGE_INVALID
            refused.setdefault(int(parts[2]), code)
    return refused


def add_user(dev: TaskHost, task: dict[str, Any]) -> Flow[Outcome]:
    return (yield from _users(dev, task, upsert=False))


def update_user(dev: TaskHost, task: dict[str, Any]) -> Flow[Outcome]:
    return (yield from _users(dev, task, upsert=True))


def delete_user(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    if dev.faces.delete(task["user_id"]):
        return done("deleteUser")
    return failed("deleteUser", USER_NOT_FOUND, f"user {task['user_id']} not found")


def del_user_list(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    gone = dev.faces.delete_list(task["user_list"])
    return done("delUserList", {"resp_list": [{"user_id": uid, "code": OK} for uid in gone]})


# ---- device settings --------------------------------------------------------------
# The clock a device can be set to: a UTC date of years 1970 to 9999 (a time_t that gmtime can show). A server
# that sends 2**70 or 1e308 gets BAD_PARAMETER, as from a firmware whose clock cannot hold it.
CLOCK_MAX_S = 253_402_300_799  # 9999-12-31T23:59:59Z


def set_dev_time(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    stamp = task["time_stamp"]
    if not (isinstance(stamp, int | float) and 0 <= stamp <= CLOCK_MAX_S):  # also NaN: no comparison holds
        return Outcome(
            BAD_PARAMETER, f"'setDevTime' failed: time_stamp {str(stamp)[:40]} is not a time the clock holds"
        )
    if "ignore-devtime" not in dev.cfg.faults:
        dev.set_clock(stamp)
    return done("setDevTime")


def set_screen_save(dev: TaskHost, task: dict[str, Any]) -> Flow[Outcome]:
    slots = [key for key in dev.task_properties("setScreenSave") if key.startswith("image_")]
    fetched: dict[str, bytes | None] = {}
    for slot in slots:
        if slot not in task:
            continue
        if task[slot] == "":
            fetched[slot] = None  # errata #24: an empty image_N deletes that screen saver
            continue
        try:
            data = yield from dev.download(task[slot])
        except DownloadFailed as exc:
            return failed("setScreenSave", exc.code, f"{slot}: {exc}")
        why = check_image(data, "image/png")
        if why:
            return failed("setScreenSave", FILE_INVALID, f"{slot} is {why}")
        fetched[slot] = data
    for slot, image in fetched.items():
        if image is None:
            dev.screen_savers.pop(slot, None)
        else:
            dev.screen_savers[slot] = image
    dev.screen_saver_settings = {k: v for k, v in task.items() if not k.startswith(("image_", "request_"))}
    return done("setScreenSave")


def upgrade(dev: TaskHost, task: dict[str, Any]) -> Flow[Outcome]:
    try:
        data = yield from dev.download(task["URL"])
    except DownloadFailed as exc:
        return failed("upgrade", exc.code, str(exc))
    try:
        version = verify_firmware(data)
    except FirmwareError as exc:
        return failed("upgrade", FILE_INVALID, str(exc))
    dev.log(f"upgrade: installed {version} (was {dev.cfg.software_version})")
    dev.cfg.software_version = version
    return done("upgrade")


def get_log_file(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    return done("getLogFile", {"log_info": "" if "empty-log" in dev.cfg.faults else dev.log_text()})


def get_dev_status(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    cfg = dev.cfg
    if "refuse-dev-status" in cfg.faults:
        return failed("getDevStatus", COMMAND_UNKNOWN, "command does not exist")
    total = len(dev.faces)
    if "static-face-count" in cfg.faults:  # a count cached once and never refreshed
        if dev.first_face_count is None:
            dev.first_face_count = total
        total = dev.first_face_count
    # each result field names what it reports (schema mark x-device-value): the face count or a DeviceConfig field
    contract = get_contract()
    reported = contract.marked_fields(contract.result_schema("getDevStatus"), "x-device-value")
    return done(
        "getDevStatus",
        {name: total if what == "face_count" else getattr(cfg, what) for name, what in reported.items()},
    )


def set_resume_transfer(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    dev.resume_transfer = bool(task["enable"])
    return done("setResumeTransfer")


def set_platform_server(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    address = task.get("serverAddr")
    if "wsServerAddr" in task:
        dev.ws_server = task["wsServerAddr"]
    if not address:
        return done("setPlatformServer", {"resp_type": task["request_type"]})  # the task it answers (schema const)
    try:
        target = server_url(address)  # no scheme in serverAddr: http:// is implied
    except ValueError as exc:
        return failed("setPlatformServer", BAD_PARAMETER, str(exc))
    outcome = done("setPlatformServer", {"resp_type": task["request_type"]})
    if "ignore-platform-server" in dev.cfg.faults:
        dev.log(f"setPlatformServer {target}: reported done, staying on {dev.server}")
        return outcome

    def move() -> None:
        dev.move_to(target)

    outcome.after = move
    return outcome


def face_cmd(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    outcome = done("faceCmd")
    if "facecmd-no-capture" not in dev.cfg.faults:

        def capture() -> Flow[dict[str, Any]]:
            return (yield from dev.capture("face"))

        outcome.after = capture
    return outcome


def set_face_config(dev: TaskHost, task: dict[str, Any]) -> Outcome:
    dev.face_config.update({k: v for k, v in task.items() if not k.startswith("request_")})
    return done("SetFaceConfig")


# a handler returns its Outcome, or is a flow that returns it (it needs the network)
HANDLERS: dict[str, Callable[[TaskHost, dict[str, Any]], Outcome | Flow[Outcome]]] = {
    "addUser": add_user,
    "updateUser": update_user,
    "deleteUser": delete_user,
    "delUserList": del_user_list,
    "setDevTime": set_dev_time,
    "setScreenSave": set_screen_save,
    "upgrade": upgrade,
    "getLogFile": get_log_file,
    "getDevStatus": get_dev_status,
    "setResumeTransfer": set_resume_transfer,
    "setPlatformServer": set_platform_server,
    "faceCmd": face_cmd,
    "SetFaceConfig": set_face_config,
}
