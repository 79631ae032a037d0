"""HAR files between facecert and the HAR tools people already use: ours load in
haralyzer (pages, browser, creator, bodies), and a HAR written as chrome-har
writes JSON bodies (``postData.params``, no ``text``) is read with its bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from haralyzer import HarParser

from facecert import __version__
from facecert.core.captures import read_capture, write_har
from facecert.core.engine import Engine, EngineConfig
from facecert.samples import sample_conversation


@pytest.fixture(autouse=True)
def _keep_personal_data():
    """These tests check the formats keep bytes exact; redaction (the default) has tests/engine/test_redact.py."""
    from facecert.core.redact import configure, reset

    configure(keep_personal_data=True)
    yield
    reset()


def judge(exchanges: list) -> list:
    engine = Engine(EngineConfig())
    for exchange in exchanges:
        engine.feed(exchange)
    engine.finish()
    return engine.findings


def chrome_har_params(value: dict[str, Any]) -> list[dict[str, Any]]:
    """chrome-har's toNameValuePairs: a member per pair, an array member as a pair per element."""
    pairs: list[dict[str, Any]] = []
    for name, member in value.items():
        pairs += (
            [{"name": name, "value": v} for v in member]
            if isinstance(member, list)
            else [{"name": name, "value": member}]
        )
    return pairs


def as_chrome_har(path: Path) -> dict[str, Any]:
    """Our HAR with every JSON request body moved from ``text`` into ``params``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for entry in data["log"]["entries"]:
        post = entry["request"].get("postData")
        if post and post.get("text"):
            post["params"] = chrome_har_params(json.loads(post.pop("text")))
    return data


def test_our_har_loads_in_haralyzer(tmp_path: Path) -> None:
    exchanges = sample_conversation(cycles=2)
    har = write_har(exchanges, tmp_path / "session.har", creator="facecert test")
    parser = HarParser.from_file(str(har))
    assert parser.creator == {"name": "facecert test", "version": __version__}
    assert parser.browser["name"] == "facecert test"
    pages = [page for page in parser.pages if page.page_id != "unknown"]
    assert [page.page_id for page in pages] == ["facecert"] and len(parser.pages) == 1  # every entry has its page
    entries = pages[0].entries
    assert len(entries) == len(exchanges)
    assert [e.request.text.encode() for e in entries] == [ex.request_body for ex in exchanges]
    assert [e.response.status for e in entries] == [ex.status for ex in exchanges]
    assert pages[0].startedDateTime == entries[0].raw_entry["startedDateTime"]


def test_chrome_har_params_are_read_as_the_json_bodies(tmp_path: Path) -> None:
    exchanges = sample_conversation(cycles=3)
    ours = write_har(exchanges, tmp_path / "ours.har")
    chrome = tmp_path / "chrome.har"
    chrome.write_text(json.dumps(as_chrome_har(ours)), encoding="utf-8")
    posts = [e["request"]["postData"] for e in json.loads(chrome.read_text(encoding="utf-8"))["log"]["entries"]]
    assert all(post["params"] and "text" not in post for post in posts)
    read = list(read_capture(chrome))
    assert [json.loads(ex.request_body) for ex in read] == [json.loads(ex.request_body) for ex in exchanges]
    assert judge(read) == []  # no MSG-EMPTY-BODY (nor anything else) on a correct conversation


def test_params_arrays_and_forms_are_rebuilt(tmp_path: Path) -> None:
    """A name given more than once was an array member; form parameters become a form body."""
    entry = {
        "startedDateTime": "2024-01-01T00:00:00+00:00",
        "time": 1,
        "request": {
            "method": "POST",
            "url": "http://device.invalid/taskResult",
            "headers": [],
            "postData": {
                "mimeType": "application/json; charset=utf-8",
                "params": [
                    {"name": "device_id", "value": "ID1"},
                    {"name": "ids", "value": 1},
                    {"name": "ids", "value": 2},
                    {"name": "user", "value": {"user_id": "u1"}},
                ],
            },
        },
        "response": {"status": 200, "headers": [], "content": {"text": "{}", "mimeType": "application/json"}},
    }
    form = {
        **entry,
        "request": {
            **entry["request"],
            "postData": {
                "mimeType": "application/x-www-form-urlencoded",
                "params": [{"name": "a", "value": "1 2"}, {"name": "b"}],
            },
        },
    }
    path = tmp_path / "params.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry, form]}}), encoding="utf-8")
    rebuilt, posted = read_capture(path)
    assert json.loads(rebuilt.request_body) == {"device_id": "ID1", "ids": [1, 2], "user": {"user_id": "u1"}}
    assert posted.request_body == b"a=1+2&b="
