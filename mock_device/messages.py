"""The device's messages, built from the repaired examples and cut to the
declared protocol version through the contract, with the fault knobs applied
at the one place each message is made.

Nothing here lists a field, an enum value or a range of the protocol: bodies
start from ``facecert.core.examples.example_for`` and keep only what the
contract's schema (cut to the version) defines; the identity and the clock fill
the values, bounded numbers are drawn within the schema's range, enum values are
picked by the names the schema gives them (``x-enum-names``) and a stranger's
capture drops the fields marked ``x-identification``.
"""

from __future__ import annotations

import functools
import json
import random
import time
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.hostile import break_body
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.facedb import FaceUser
from facecert.mock_device.faults import FAULTS_BY_NAME
from facecert.mock_device.media import b64, capture_jpeg, tiny_png
from facecert.mock_device.persona import dress

# The kinds of capture the device makes; a structured one (pedestrian, vehicle) is the car_label value of that
# name (schema x-enum-names, §4 结构化抓拍类型), the others carry the value named "none" (errata #5).
CAPTURE_KINDS = ("face", "stranger", "pedestrian", "vehicle")
STRUCTURED_KINDS = ("pedestrian", "vehicle")


@functools.cache
def _cached_example(schema: str) -> Any:
    return example_for(schema)


def example(schema: str) -> Any:
    """The repaired example of a schema, a fresh copy (examples are read from disk once per process)."""
    return _json_copy(_cached_example(schema))


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars): what copy.deepcopy does for one, at a fifth of its
    cost (no memo: JSON has no shared or cyclic parts). Every poll builds its body from a copy."""
    if isinstance(value, dict):
        return {key: _json_copy(item) if isinstance(item, dict | list) else item for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) if isinstance(item, dict | list) else item for item in value]
    return value


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@functools.cache
def schema_properties(schema: str, version: str) -> dict[str, Any]:
    """Top-level properties of a message schema cut to ``version`` (allOf parts included); do not mutate."""
    contract = get_contract()
    node = contract.schema(schema, version)
    props = dict(node.get("properties") or {})
    for part in node.get("allOf", []):
        target = contract._resolve(part["$ref"], version) if "$ref" in part else part
        props.update(target.get("properties") or {})
    return props


def keep_known(body: dict[str, Any], schema: str, version: str) -> dict[str, Any]:
    """Drop fields the declared protocol version does not have."""
    props = schema_properties(schema, version)
    return {k: v for k, v in body.items() if k in props}


def enum_of(schema: str, field: str, version: str) -> list[Any]:
    return list(schema_properties(schema, version).get(field, {}).get("enum") or [])


@functools.cache
def not_structured(schema: str, version: str) -> dict[str, Any]:
    """Field -> its value named "none" (x-enum-names): car_label, car_type and car_color of a capture that is
    not a structured one."""
    contract = get_contract()
    found = {}
    for name in schema_properties(schema, version):
        if "none" in contract.enum_names(schema, f"/{name}", version).values():
            found[name] = contract.enum_value(schema, f"/{name}", "none", version)
    return found


@functools.cache
def bounded_numbers(schema: str, version: str) -> dict[str, tuple[float, float, bool]]:
    """Field -> (minimum, maximum, integer?) of every number the schema bounds on both sides (face angles,
    quality, score, age)."""
    contract = get_contract()
    found = {}
    for name in schema_properties(schema, version):
        prop = contract.property_schema(schema, f"/{name}", version)
        if prop.get("type") in ("integer", "number") and "minimum" in prop and "maximum" in prop:
            found[name] = (prop["minimum"], prop["maximum"], prop["type"] == "integer")
    return found


def within(bounds: tuple[float, float, bool], rng: random.Random, low: float = 0.0, high: float = 1.0) -> float:
    """A random value within ``bounds`` (a field's schema range), in its ``low``..``high`` share of it."""
    lo, hi, integer = bounds
    a, b = lo + (hi - lo) * low, lo + (hi - lo) * high
    return rng.randint(int(a), int(b)) if integer else round(rng.uniform(a, b), 2)


def not_in_enum(schema: str, field: str, version: str) -> int:
    """The smallest non-negative integer the field's enum lacks (the bad-enum knob's value)."""
    values = set(enum_of(schema, field, version))
    return next(v for v in range(len(values) + 1) if v not in values)


def _endpoint_schema(name: str) -> str:
    return get_contract().all_endpoints[name].request


# ---- taskRequest ------------------------------------------------------------
def poll_body(cfg: DeviceConfig, now: float, version: str) -> dict[str, Any]:
    body = example(_endpoint_schema("taskRequest"))
    body.update(
        device_id=cfg.device_id,
        device_mac=cfg.device_mac,
        device_name=cfg.device_name,
        time_stamp=int(now),
        software_version=cfg.software_version,
        lib_platform_version=cfg.lib_platform_version,
        lib_ai_version=cfg.lib_ai_version,
    )
    body = keep_known(body, _endpoint_schema("taskRequest"), version)
    faults = cfg.faults
    if "missing-field" in faults:
        body.pop("device_mac", None)
    if "wrong-type" in faults:
        body["time_stamp"] = str(body["time_stamp"])
    if "bad-format" in faults:
        body["device_mac"] = body["device_mac"].replace("-", "")[:9]
    if "vendor-fields" in faults:
        return dress("taskRequest", body, "field", cfg.device_ip)
    return dress("taskRequest", body, cfg.persona, cfg.device_ip)


def _hostile_rule(faults: set[str]) -> str | None:
    """The JSON bound a knob makes the first poll break (one breaker per rule, shared with the engine's tests)."""
    return next((FAULTS_BY_NAME[name].rule for name in sorted(faults) if FAULTS_BY_NAME[name].hostile_first_poll), None)


def poll_request(cfg: DeviceConfig, body: dict[str, Any], first: bool) -> tuple[str, bytes]:
    """(method, raw body) of a poll: the one-shot framing faults hit the first poll only."""
    raw = encode(body)
    if not first:
        return "POST", raw
    faults = cfg.faults
    rule = _hostile_rule(faults)
    if rule:
        raw = break_body(rule, body)
    if "not-json" in faults:
        raw = raw[:-1] + b",}"
    elif "json-array" in faults:
        raw = b"[" + raw + b"]"
    elif "empty-body" in faults:
        raw = b""
    elif "oversized" in faults:
        raw = raw[:-1] + b',"pad":"' + b"x" * (get_contract().limits.max_body_bytes + 1) + b'"}'
    return ("GET" if "http-get" in faults else "POST"), raw


# ---- taskResult -------------------------------------------------------------
def result_body(cfg: DeviceConfig, request_id: Any, code: int, log: str, extras: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"device_id": cfg.device_id, "request_id": request_id, "code": code, "log": log}
    body.update(extras)
    return dress("taskResult", body, cfg.persona, cfg.device_ip)


# ---- faceRecognition --------------------------------------------------------
def frpic_name(channel: int, now: float, face_id: int) -> str:
    """FACE_<channel>_<yyyyMMddHHmmssSSS>_<face_id>.jpg, the form seen in the field (UTC here)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"
    return f"FACE_{channel}_{stamp}_{face_id}.jpg"


def capture_body(
    cfg: DeviceConfig, now: float, face_id: int, kind: str, user: FaceUser | None, version: str, rng: random.Random
) -> dict[str, Any]:
    """A plausible capture for the declared version; ``user`` makes it a recognised face."""
    if kind not in CAPTURE_KINDS:
        raise ValueError(f"capture kind {kind!r}; one of {', '.join(CAPTURE_KINDS)}")
    schema = _endpoint_schema("faceRecognition")
    body = example(schema)
    snap_ms = int(now * 1000)
    body.update(
        IP=cfg.device_ip,
        device_ip=cfg.device_ip,
        device_id=cfg.device_id,
        timestamp=int(now),
        snap_time=snap_ms // 1000,
        snap_time_ms=snap_ms,
        frpic_name=frpic_name(0, now, face_id),
        face_id=face_id,
        image=b64(capture_jpeg(face_id % 8)),
        user_temperature=round(36.2 + rng.random(), 1),  # no range in the schema: a plausible body temperature
    )
    bounded = bounded_numbers(schema, version)
    for field in bounded.keys() & body.keys():  # face angles, quality, age: anywhere in the schema's range
        body[field] = within(bounded[field], rng)
    body.update(not_structured(schema, version))
    if kind == "face" and user is not None:
        body.update(
            user_id=user.user_id,
            user_name=str(user.user_info.get("name", user.user_id)),
            user_list=user.user_list,
        )
        if "comp_score" in bounded:
            body["comp_score"] = within(bounded["comp_score"], rng, 0.8, 0.99)  # a match scores high
        body["group"] = user.group if user.group is not None else 0
        if user.access_card is not None:
            body["access_card"] = user.access_card
    else:
        for field in get_contract().marked_fields(schema, "x-identification", version):
            body.pop(field, None)
        body["user_list"] = get_contract().enum_value(schema, "/user_list", "stranger", version)
    if kind in STRUCTURED_KINDS and "car_label" in schema_properties(schema, version):
        body["car_label"] = get_contract().enum_value(schema, "/car_label", kind, version)
        if kind == "vehicle":  # a vehicle has every structured field (car_type, car_color): some value but "none"
            for field, none in not_structured(schema, version).items():
                if field != "car_label":
                    body[field] = rng.choice([v for v in enum_of(schema, field, version) if v != none] or [none])
            body["car_number"] = f"SIM{face_id % 100000:05d}"
        body["body_image"] = body["image"]
    body = dress("faceRecognition", keep_known(body, schema, version), cfg.persona, cfg.device_ip)
    return apply_capture_faults(cfg, body)


def apply_capture_faults(cfg: DeviceConfig, body: dict[str, Any]) -> dict[str, Any]:
    faults = cfg.faults
    schema = _endpoint_schema("faceRecognition")
    version = get_contract().latest
    if "bad-enum" in faults:
        body["mask"] = not_in_enum(schema, "mask", version)
    if "out-of-range" in faults:
        body["comp_score"] = bounded_numbers(schema, version)["comp_score"][1] + 50.0
    if "capture-bad-base64" in faults:
        body["image"] = "not base64 at all!"
    if "capture-not-jpeg" in faults:
        body["image"] = b64(tiny_png())
    if "snaptime-ms" in faults:
        body["snap_time_ms"] = body["snap_time"] * 1000 + 5000
    return body


# ---- deviceAlarm ------------------------------------------------------------
def alarm_types(version: str) -> list[int]:
    return enum_of(_endpoint_schema("deviceAlarm"), "alarm_type", version)


def image_alarm_type() -> Any:
    """The alarm type that may carry an image: the schema's ``if`` clause names it (vehicle, errata #11)."""
    node = get_contract().raw[_endpoint_schema("deviceAlarm")]
    return node.get("if", {}).get("properties", {}).get("alarm_type", {}).get("const")


def alarm_body(cfg: DeviceConfig, now: float, alarm_type: int, status: int, version: str) -> dict[str, Any]:
    schema = _endpoint_schema("deviceAlarm")
    body = example(schema)
    body.update(
        device_ip=cfg.device_ip,
        device_id=cfg.device_id,
        device_name=cfg.device_name,
        device_mac=cfg.device_mac,
        lib_platform_version=cfg.lib_platform_version,
        software_version=cfg.software_version,
        lib_ai_version=cfg.lib_ai_version,
        alarm_status=status,
        alarm_type=alarm_type,
        time_stamp=int(now),
    )
    body.pop("image", None)
    allows_image = "image" in schema_properties(schema, version)
    if allows_image and (alarm_type == image_alarm_type() or "alarm-image" in cfg.faults):
        body["image"] = b64(capture_jpeg(alarm_type))
    return keep_known(body, schema, version)


# ---- gpsReport --------------------------------------------------------------
def gps_body(cfg: DeviceConfig, now: float, lat: float, lon: float, distance: float) -> dict[str, Any]:
    body = example(_endpoint_schema("gpsReport"))
    if "gps-bad-distance" in cfg.faults:
        distance += 50.0
    body.update(
        device_id=cfg.device_id,
        device_mac=cfg.device_mac,
        time_stamp=int(now),
        longitude=lon,
        latitude=lat,
        distance=round(distance, 1),
        status=1,
    )
    return body
