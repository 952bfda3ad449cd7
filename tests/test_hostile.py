"""Crafted status files: refused (or inert) with bounded time and memory, nothing read or fetched.

Each hostile file goes through the parser and the loader in-process, and through the `show`,
`validate` and `roundtrip` commands in a child process whose address space and run time are
capped: a parser that expanded entities or built a huge tree would hit those caps and fail
the test instead of taking the machine down. A local HTTP server counts any fetch attempt.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from lxml import etree

import blockjob
from blockjob.errors import StatusXMLError, UnsafeXMLError
from blockjob.statusxml.parse import parse

REPO = Path(blockjob.__file__).resolve().parent.parent
PASSWD_LINE = Path("/etc/passwd").read_text().splitlines()[0]
COMMANDS = ("show", "validate", "roundtrip")
CHILD_MEMORY = 1 << 30  # bytes of address space; an expanded entity bomb needs far more
CHILD_TIMEOUT = 120  # seconds; a guard against a hang, not a speed claim

_STATUS = (
    "<domstatus state='running' reason='booted' pid='1'>\n"
    "  <blockjobs active='no'/>\n"
    "  <domain type='qemu'>\n"
    "    <name>evil</name>\n"
    "    {inside}\n"
    "  </domain>\n"
    "</domstatus>\n"
)


def _status(inside: str = "") -> str:
    return _STATUS.format(inside=inside)


def _laughs(levels: int, width: int) -> str:
    """Entity declarations where `&lol{levels-1};` expands to width**(levels-1) laughs."""
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * width}">' for n in range(1, levels)]
    return "".join(entities)


Payload = Callable[[str], bytes]  # server base URL -> file content

REFUSED_UNSAFE: dict[str, Payload] = {
    "xxe-file": lambda url: (
        '<!DOCTYPE domstatus [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + _status("<description>&xxe;</description>")
    ).encode(),
    "xxe-network": lambda url: (
        f'<!DOCTYPE domstatus [<!ENTITY xxe SYSTEM "{url}/xxe">]>\n'
        + _status("<description>&xxe;</description>")
    ).encode(),
    "external-dtd": lambda url: (
        f'<!DOCTYPE domstatus SYSTEM "{url}/evil.dtd">\n' + _status()
    ).encode(),
    "parameter-entity": lambda url: (
        f'<!DOCTYPE domstatus [<!ENTITY % remote SYSTEM "{url}/param.dtd"> %remote;]>\n'
        + _status()
    ).encode(),
    "billion-laughs": lambda url: (
        f"<!DOCTYPE domstatus [{_laughs(10, 10)}]>\n"
        + _status("<description>&lol9;</description>")
    ).encode(),
    "quadratic-blowup": lambda url: (
        f'<!DOCTYPE domstatus [<!ENTITY a "{"A" * 50_000}">]>\n'
        + _status(f"<description>{'&a;' * 50_000}</description>")
    ).encode(),
    # The DOCTYPE comes after more `!` than the scanner's quick looks cover.
    "doctype-after-comments": lambda url: (
        "<!-- ! -->\n" * 40
        + '<!DOCTYPE domstatus [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + _status("<description>&xxe;</description>")
    ).encode(),
    "xml-declaration-then-doctype": lambda url: (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE domstatus [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + _status("<description>&xxe;</description>")
    ).encode(),
}

REFUSED_MALFORMED: dict[str, Payload] = {
    # In UTF-16 the DOCTYPE bytes differ from ASCII; the parser reads only UTF-8, so it never
    # gets to see the declaration at all.
    "utf16-billion-laughs": lambda url: (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        f"<!DOCTYPE domstatus [{_laughs(10, 10)}]>\n"
        + _status("<description>&lol9;</description>")
    ).encode("utf-16"),
    "utf7-doctype": lambda url: (
        '<?xml version="1.0" encoding="UTF-7"?>\n+ADw-!DOCTYPE domstatus+AD4-\n' + _status()
    ).encode(),
    "undeclared-entity": lambda url: _status("<description>&passwd;</description>").encode(),
    "deep-nesting": lambda url: _status("<a>" * 100_000 + "</a>" * 100_000).encode(),
    "huge-text-node": lambda url: _status(f"<description>{'x' * 11_000_000}</description>")
    .encode(),
}

# Parsed, and harmless: nothing in the package processes XInclude or schema locations.
INERT: dict[str, Payload] = {
    "xinclude-file": lambda url: _status(
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" '
        'parse="text"/>'
    ).encode(),
    "xinclude-network": lambda url: _status(
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}/xi.xml"/>'
    ).encode(),
    "schema-location": lambda url: (
        "<domstatus xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
        f"xsi:noNamespaceSchemaLocation='{url}/evil.xsd' state='running' reason='booted' "
        "pid='1'>\n" + _status().split("\n", 1)[1]
    ).encode(),
    "stylesheet-pi": lambda url: (
        f'<?xml-stylesheet type="text/xsl" href="{url}/evil.xsl"?>\n' + _status()
    ).encode(),
}


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<!ENTITY leak 'fetched'>")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    assert _CountingHandler.hits == [], "a hostile document made the package fetch a URL"


_CHILD = """
import contextlib, io, json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from blockjob.cli import main
results = {}
def stream():
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
def text(stream):
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "replace")
for argv in json.loads(sys.argv[1]):
    out, err = stream(), stream()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results[argv[0]] = [code, text(out), text(err)]
print(json.dumps(results))
"""


def _run_commands(path: Path) -> dict[str, tuple[int, str, str]]:
    """Each command on `path` in one capped child: {command: (exit code, stdout, stderr)}."""
    argvs = [[command, str(path)] for command in COMMANDS]
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(argvs), str(CHILD_MEMORY)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: (code, out, err) for name, (code, out, err) in json.loads(result.stdout).items()}


def _write(tmp_path: Path, name: str, payload: Payload, url: str) -> tuple[Path, bytes]:
    data = payload(url)
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    return path, data


REFUSED = {**REFUSED_UNSAFE, **REFUSED_MALFORMED}


@pytest.mark.parametrize("name", REFUSED)
def test_parser_and_loader_refuse_with_a_typed_error(
    tmp_path: Path, server_url: str, name: str
) -> None:
    path, data = _write(tmp_path, name, REFUSED[name], server_url)
    expected = UnsafeXMLError if name in REFUSED_UNSAFE else StatusXMLError
    for call in (lambda: parse(data, str(path)), lambda: blockjob.loads(data, str(path)),
                 lambda: blockjob.load(path)):
        with pytest.raises(expected) as caught:
            call()
        assert caught.value.file == str(path)
        assert isinstance(caught.value.line, int)
        assert PASSWD_LINE not in str(caught.value)
        assert "fetched" not in str(caught.value)
    if name in REFUSED_UNSAFE:
        assert "document type declarations and entities are not allowed" in str(caught.value)


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_exit_2_with_file_line_message(
    tmp_path: Path, server_url: str, command: str
) -> None:
    path, _ = _write(tmp_path, "xxe-file", REFUSED["xxe-file"], server_url)
    code, out, err = _run_commands(path)[command]
    assert (code, out) == (2, "")
    assert re.fullmatch(rf"{re.escape(str(path))}:1: document type declarations .*\n", err)


@pytest.mark.parametrize("name", REFUSED)
def test_commands_refuse_within_memory_and_time_caps(
    tmp_path: Path, server_url: str, name: str
) -> None:
    path, _ = _write(tmp_path, name, REFUSED[name], server_url)
    for command, (code, out, err) in _run_commands(path).items():
        assert code == 2, f"{command}: {code}"
        assert err.startswith(f"{path}:"), f"{command}: {err!r}"
        assert re.match(rf"{re.escape(str(path))}:\d+: ", err), err
        assert "Traceback" not in err
        assert PASSWD_LINE not in out + err
        assert "fetched" not in out + err


@pytest.mark.parametrize("name", INERT)
def test_xinclude_schema_location_and_stylesheet_are_inert(
    tmp_path: Path, server_url: str, name: str
) -> None:
    path, data = _write(tmp_path, name, INERT[name], server_url)
    doc = blockjob.loads(data, str(path))
    assert doc.domain_name == "evil"
    assert doc.dumps() == data, "kept verbatim, not expanded"
    for command, (code, out, err) in _run_commands(path).items():
        assert code in (0, 1), f"{command}: {code} {err}"
        assert "Traceback" not in err
        assert PASSWD_LINE not in out + err
        assert "fetched" not in out + err


def test_second_line_of_defence_refuses_a_doctype_the_scan_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("blockjob.statusxml.parse._declaration", lambda data: None)
    with pytest.raises(UnsafeXMLError, match="document type declarations"):
        parse(b"<!DOCTYPE domstatus>\n<domstatus/>\n", "f.xml")


def test_the_leak_and_fetch_checks_can_fail(server_url: str) -> None:
    # Controls: an entity-resolving parser does leak /etc/passwd, and the server does count.
    assert _CountingHandler.hits == []
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True)
    leaked = etree.fromstring(REFUSED["xxe-file"](server_url), unsafe)
    assert PASSWD_LINE in "".join(leaked.itertext())
    with urllib.request.urlopen(f"{server_url}/probe", timeout=30) as response:
        assert response.read() == b"<!ENTITY leak 'fetched'>"
    assert _CountingHandler.hits == ["/probe"]
    _CountingHandler.hits.clear()
