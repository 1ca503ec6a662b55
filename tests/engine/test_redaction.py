"""Credentials in a Dockerfile's ``ADD https://user:pass@host/…`` never reach an output.

A file server of the test's own asks for a login (HTTP Basic); the Dockerfile ADDs from it
with the login in the URL. Whether the ADD succeeds or the server refuses it (401), the
password must be in nothing bake-ci prints or writes: stdout and stderr in every progress
mode (plain lines, JSON logs, the board), the failure message, the ``--report`` file and
every file in the state folder (run logs, bake file, records).
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import Project, Result, bake_ci, make_project

USER = "alice"
PASSWORD = f"pw-{secrets.token_hex(8)}"
WRONG = f"wrong-{secrets.token_hex(8)}"


class Files(BaseHTTPRequestHandler):
    """``/data.txt`` for alice with PASSWORD; 401 for anyone else."""

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="files"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = b"the downloaded file\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"v1"')
        self.send_header("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def project_adding(tmp_path: Path, server: str, password: str) -> Project:
    project = make_project(tmp_path)
    dockerfile = project.path / "Dockerfile"
    text = dockerfile.read_text()
    add = f"ADD http://{USER}:{password}@{server}/data.txt /data.txt\n"
    dockerfile.write_text(text.replace("COPY requirements.txt .\n", f"COPY requirements.txt .\n{add}"))
    return project


def leaks(project: Project, result: Result, secret: str, *files: Path) -> list[str]:
    """Where ``secret`` shows up: the streams, the given files, every file in the state folder."""
    found = [name for name, text in (("stdout", result.out), ("stderr", result.err)) if secret in text]
    state = Path(project.env["BAKE_CI_STATE_DIR"])
    for path in [*files, *(p for p in state.rglob("*") if p.is_file())]:
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path))
    return found


@pytest.mark.parametrize("progress", ["plain", "json", "tty"])
def test_a_refused_add_shows_no_password_anywhere(tmp_path: Path, server: str, progress: str) -> None:
    project = project_adding(tmp_path, server, WRONG)
    report = tmp_path / "report.json"
    options = ["--progress", "tty"] if progress == "tty" else ["--progress", "plain"]
    options += ["--log-format", "json" if progress == "json" else "console"]
    args = ["build", "deps-py311", "--load", "--report", str(report), *options]
    result = bake_ci(*args, cwd=project.path, env=project.env)
    assert result.code == 1, result.err[-3000:]
    assert "401" in result.err or "Unauthorized" in result.err, result.err[-3000:]
    assert leaks(project, result, WRONG, report) == []
    assert "ADD http://***@" in result.err, result.err[-3000:]  # the step is still named, its login hidden
    assert "ADD http://***@" in report.read_text()  # failed_step


def test_a_successful_add_shows_no_password_anywhere(tmp_path: Path, server: str) -> None:
    project = project_adding(tmp_path, server, PASSWORD)
    report = tmp_path / "report.json"
    metadata = tmp_path / "metadata.json"
    result = bake_ci(
        "build", "deps-py311", "--load", "--progress", "plain", "--report", str(report),
        "--metadata-file", str(metadata), "-v", cwd=project.path, env=project.env,
    )  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    assert leaks(project, result, PASSWORD, report, metadata) == []
    assert "ADD http://***@" in result.err
    status = bake_ci("status", "deps-py311", "--json", cwd=project.path, env=project.env)
    assert status.code == 0, status.err[-3000:]
    assert leaks(project, status, PASSWORD) == []
