"""The HTML report: Allure 3 (npm package ``allure``) renders allure-results
into one self-contained ``index.html``, which we then make strictly offline.

A certification report can hold face captures, so opening it must not call
anywhere. Allure 3 embeds a Google Analytics tag (it ignores
``ALLURE_NO_ANALYTICS``), so after rendering we strip every script, link,
image or frame that points at a remote host and every analytics snippet, and
then check the result: a report that still refers outside is an error, not a
warning.

Allure is a pure-Node tool. Which one renders (:func:`find_allure`):
``FACECERT_ALLURE`` when set; else, in a source checkout, the copy under
``tools/allure`` installed from the committed ``package.json``/``package-lock.json``
(installing needs the npm registry once); else an Allure 3 ``allure`` on PATH.
An installed facecert without any of them says how to get one. Rendering
needs no network at all.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the source checkout when facecert runs from one (tools/allure)
ALLURE_ENV = "FACECERT_ALLURE"
ALLURE_MAJOR = "3"
HOW_TO_GET = (
    "the HTML report needs the Allure 3 CLI (npm package `allure`) and Node.js 20+: "
    "`npm install --prefix DIR allure@3` and then set FACECERT_ALLURE=DIR (or put DIR/node_modules/.bin "
    "on PATH); the JSON summary, JUnit XML and HAR are written without it, and --no-html skips the HTML"
)
INSTALL_TIMEOUT = 600.0
RENDER_TIMEOUT = 180.0

#: Attributes whose URL the browser fetches by itself (no click needed).
FETCHING_ATTRS = frozenset(
    {
        "src",
        "href",
        "srcset",
        "poster",
        "data",
        "action",
        "formaction",
        "background",
        "imagesrcset",
        "ping",
        "manifest",
        "codebase",
        "longdesc",
        "lowsrc",
        "dynsrc",
    }
)
#: Elements whose ``href`` is only followed when a reader clicks it.
NAVIGATION_ONLY = frozenset({"a", "area"})
#: Inline scripts with any of these are analytics, whatever else they do.
ANALYTICS_MARKERS = ("googletagmanager.com", "google-analytics.com", "gtag('config'", 'gtag("config"')

_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.\-]*:)?//", re.IGNORECASE)
_LOCAL_SCHEMES = ("data:", "blob:", "file:", "about:", "javascript:", "#", "mailto:")
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:[a-z][a-z0-9+.\-]*:)?//[^'")\s]+)""", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_VOID_TAG = re.compile(
    r"<(?P<tag>link|img|iframe|source|embed|object|audio|video)\b(?P<attrs>[^>]*)>"
    r"(?:\s*</(?P=tag)\s*>)?",
    re.IGNORECASE,
)
_GLOB_MAGIC = re.compile(r"[*?\[\]{}()!+@\\]")
_STYLE = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.IGNORECASE | re.DOTALL)
_STYLE_ATTR = re.compile(r"""\bstyle\s*=\s*(?:"[^"]*"|'[^']*')""", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href|srcset|data|poster)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


class AllureError(RuntimeError):
    """The HTML report could not be made; the message says why and what to do."""


# ---- find or install -----------------------------------------------------------------------


def find_allure(root: Path = ROOT) -> Path:
    """Path of the Allure 3 ``cli.js`` that renders: ``FACECERT_ALLURE`` (a folder where
    ``npm install allure@3`` ran, the package folder, its ``cli.js`` or the ``allure`` command npm
    linked to it), else ``root/tools/allure`` when facecert runs from its checkout (installed by
    :func:`ensure_allure` on first use), else an ``allure`` on PATH that is Allure 3 (Allure 2, the
    Java one, is not). Raises :class:`AllureError` saying how to get it."""
    given = os.environ.get(ALLURE_ENV)
    if given:
        cli = _allure_cli(Path(given).expanduser().resolve())
        if cli is None:
            raise AllureError(
                f"{ALLURE_ENV}={given} is not the Allure 3 CLI: give the folder where "
                "`npm install allure@3` ran, or its node_modules/allure/cli.js"
            )
        return cli
    if (Path(root) / "tools" / "allure" / "package.json").is_file():
        return ensure_allure(root)
    on_path = shutil.which("allure")
    cli = _allure_cli(Path(on_path)) if on_path else None
    if cli is not None:
        return cli
    other = f" (the `allure` on PATH, {on_path}, is not Allure 3)" if on_path else ""
    raise AllureError(HOW_TO_GET + other)


def _allure_cli(path: Path) -> Path | None:
    """The ``cli.js`` of an Allure 3 package at or under ``path``, or None."""
    if path.is_dir():
        candidates = [path / "node_modules" / "allure" / "cli.js", path / "cli.js"]
    else:
        candidates = [path.resolve()]  # npm's bin/allure is a link to the package's cli.js
    for cli in candidates:
        if cli.is_file() and cli.name == "cli.js" and _allure_version(cli).startswith(ALLURE_MAJOR + "."):
            return cli
    return None


def _allure_version(cli: Path) -> str:
    try:
        meta = json.loads((cli.parent / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(meta, dict) or meta.get("name") != "allure":
        return ""
    return str(meta.get("version", ""))


def ensure_allure(root: Path = ROOT) -> Path:
    """Path of Allure 3's ``cli.js`` under ``root/tools/allure``, installing it first if needed.

    Idempotent and quick once installed (a file check, no npm call). Runs
    ``npm ci`` when the lock file is there, else ``npm install``, with the
    npm cache inside ``root/.cache/npm`` so nothing lands in the home folder.
    """
    tools = Path(root) / "tools" / "allure"
    cli = tools / "node_modules" / "allure" / "cli.js"
    if _installed(tools, cli):
        return cli
    if not (tools / "package.json").is_file():
        raise AllureError(
            f"{tools / 'package.json'} is missing: run facecert from its source checkout "
            "(the HTML report needs tools/allure)"
        )
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise AllureError(
            "the HTML report needs Node.js 20+ and npm (e.g. apt-get install nodejs npm); "
            "the JSON summary, JUnit XML and HAR are written without them"
        )
    with _install_lock(Path(root) / ".cache"):
        if not _installed(tools, cli):
            _npm_install(npm, tools, Path(root))
    if not _installed(tools, cli):
        raise AllureError(f"npm finished but {cli} is not there; remove {tools / 'node_modules'} and retry")
    return cli


def _installed(tools: Path, cli: Path) -> bool:
    """True when the ``allure`` in node_modules is the version the lock file pins."""
    if not cli.is_file():
        return False
    wanted = _locked_version(tools / "package-lock.json")
    if wanted is None:
        return True
    try:
        have = json.loads((cli.parent / "package.json").read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return False
    return have == wanted


def _locked_version(lock: Path) -> str | None:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("packages", {}).get("node_modules/allure", {}).get("version")


@contextmanager
def _install_lock(cache: Path) -> Iterator[None]:
    """One installer at a time: two reports rendered at once must not race npm."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "allure-install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _npm_install(npm: str, tools: Path, root: Path) -> None:
    command = "ci" if (tools / "package-lock.json").is_file() else "install"
    env = {
        **os.environ,
        "npm_config_cache": str(root / ".cache" / "npm"),
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
        "npm_config_loglevel": "error",
    }
    code, out = _run([npm, command, "--no-audit", "--no-fund"], cwd=tools, env=env, timeout=INSTALL_TIMEOUT)
    if code != 0:
        raise AllureError(
            f"`npm {command}` in {tools} failed (exit {code}); it needs the npm registry once.\n" + _tail(out)
        )


# ---- render --------------------------------------------------------------------------------


def render_report(
    results_dir: Path, out_dir: Path, title: str, *, root: Path = ROOT, timeout: float = RENDER_TIMEOUT
) -> Path:
    """Render ``results_dir`` (allure-results) into ``out_dir/index.html``, offline.

    Runs ``allure awesome --single-file`` (the CLI :func:`find_allure` finds), strips
    outside references and verifies none is left. Returns the path of ``index.html``;
    raises :class:`AllureError` with a readable reason on any failure or timeout.
    """
    results_dir, out_dir = Path(results_dir).resolve(), Path(out_dir).resolve()
    if not results_dir.is_dir():
        raise AllureError(f"no allure-results folder at {results_dir}")
    cli = find_allure(root)
    node = shutil.which("node")
    if node is None:
        raise AllureError("the HTML report needs Node.js 20+ (node is not on PATH)")
    try:
        html = _render_offline(node, cli, results_dir, title, timeout)
        return _write_atomically(out_dir / "index.html", html)
    except OSError as exc:  # disk full, permissions, a file where the folder should be
        raise AllureError(f"could not make the HTML report of {results_dir} in {out_dir}: {exc}") from None


def _render_offline(node: str, cli: Path, results_dir: Path, title: str, timeout: float) -> str:
    """Allure's page for ``results_dir`` with every outside reference gone (checked)."""
    with tempfile.TemporaryDirectory(prefix="facecert-allure-") as work:
        # Allure renders in a scratch folder: it also writes its own summary.json, and no
        # half-made page that still calls out ever lands in the report folder.
        raw = Path(work) / "out" / "index.html"
        results = _allure_input(results_dir, Path(work) / "allure-results")
        command = [
            node,
            str(cli),
            "awesome",
            "--single-file",
            "--report-name",
            title or "facecert",
            "--report-language",
            "en",
            "-o",
            str(raw.parent),
            str(results),
        ]
        code, out = _run(command, cwd=Path(work), env=_render_env(), timeout=timeout)
        if code != 0 or not raw.is_file():
            raise AllureError(f"allure could not render {results_dir} (exit {code}):\n" + _tail(out))
        _check_read(results_dir, raw.parent)
        html = strip_outside_references(raw.read_text(encoding="utf-8"))
    left = outside_references(html)
    if left:
        raise AllureError(f"the report for {results_dir} still refers outside after stripping: {', '.join(left[:5])}")
    return html


def _allure_input(results_dir: Path, scratch: Path) -> Path:
    """The results folder as Allure may be given it. Allure reads its argument as a glob and
    skips symlinks, so a folder named with ``[``, ``*``, ``{`` ... is hard-linked (or copied)
    under a plain name first; ordinary names pass straight through."""
    if not _GLOB_MAGIC.search(str(results_dir)):
        return results_dir
    shutil.copytree(results_dir, scratch, copy_function=_link_or_copy)
    return scratch


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _check_read(results_dir: Path, allure_out: Path) -> None:
    """Allure exits 0 on a folder it could not read; a report of nothing must not pass as one."""
    given = sum(1 for _ in results_dir.glob("*-result.json"))
    try:
        total = json.loads((allure_out / "summary.json").read_text(encoding="utf-8"))["stats"]["total"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # Allure changed its side files; the page itself is still checked
    if given and not total:
        raise AllureError(f"allure read none of the {given} results in {results_dir}")


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def _render_env() -> dict[str, str]:
    """Everything Allure or Node might read to phone home or colour output, turned off."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALLURE_", "NODE_OPTIONS"))}
    env.update(
        {
            "ALLURE_NO_ANALYTICS": "1",
            "DO_NOT_TRACK": "1",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
            "NO_UPDATE_NOTIFIER": "1",
            "npm_config_update_notifier": "false",
        }
    )
    return env


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run a child in its own process group; on timeout kill the whole group and say so."""
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise AllureError(f"could not start {command[0]}: {exc}") from None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise AllureError(f"`{' '.join(command[:3])} ...` did not finish in {timeout:g} s and was stopped") from None
    except BaseException:  # Ctrl-C: the child is in its own session and would not get the signal
        _kill(proc)
        raise
    return proc.returncode, out


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---- offline -------------------------------------------------------------------------------


def is_remote(url: str) -> bool:
    """True for URLs the browser would fetch from a host (http, https, ws, protocol-relative)."""
    value = url.strip()
    if not value or value.lower().startswith(_LOCAL_SCHEMES):
        return False
    return bool(_REMOTE.match(value))


def strip_outside_references(html: str) -> str:
    """Remove analytics snippets and every script/link/img/frame that loads from a remote host,
    and blank remote ``url()`` in styles."""

    def script(match: re.Match[str]) -> str:
        if _has_remote_url(match["attrs"]) or any(marker in match["body"] for marker in ANALYTICS_MARKERS):
            return ""
        return match[0]

    def element(match: re.Match[str]) -> str:
        return "" if _has_remote_url(match["attrs"]) else match[0]

    html = _VOID_TAG.sub(element, _SCRIPT.sub(script, html))
    return _STYLE_ATTR.sub(_neutralize_css, _STYLE.sub(_neutralize_css, html))


def _neutralize_css(match: re.Match[str]) -> str:
    """Point remote CSS ``url()``/``@import`` at about:blank; the rest of the style stays."""
    return _CSS_URL.sub(lambda url: url[0].replace(url[1], "about:blank"), match[0])


def _has_remote_url(attrs: str) -> bool:
    for match in _URL_ATTR.finditer(attrs):
        value = next(group for group in match.groups()[1:] if group is not None)
        if any(is_remote(url) for url in _urls(match[1].lower(), value)):
            return True
    return False


def _urls(attr: str, value: str) -> list[str]:
    """The URLs in one attribute value: a srcset lists several, ``url [descriptor]``, comma-separated."""
    if "srcset" not in attr:
        return [value]
    return [part.split()[0] for part in value.split(",") if part.strip()]


def outside_references(html: str) -> list[str]:
    """Every remote URL the page would load by itself: fetching attributes, CSS ``url()``, analytics.

    Plain-text mentions (an XML namespace, a sentence) are not requests and
    are allowed, and so are ``<a href>`` links, which only a click follows.
    """
    finder = _ReferenceFinder()
    finder.feed(html)
    finder.close()
    return finder.found


class _ReferenceFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag if tag in ("script", "style") else None
        for name, value in attrs:
            if not value:
                continue
            if name == "style":
                self.found += [f"<{tag} style> {url}" for url in _CSS_URL.findall(value)]
            elif name in FETCHING_ATTRS and not (name == "href" and tag in NAVIGATION_ONLY):
                self.found += [f"<{tag} {name}> {url}" for url in _urls(name, value) if is_remote(url)]

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.found += [f"<style> {url}" for url in _CSS_URL.findall(data)]
        elif self._in == "script":
            self.found += [f"<script> analytics snippet ({marker})" for marker in ANALYTICS_MARKERS if marker in data][
                :1
            ]
