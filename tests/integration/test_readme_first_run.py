"""The README's first command, as written, from a fresh copy of the checkout (its tracked files,
no data/): it serves, sets up the local development caller and prints the way once; the README's
card command then shows a card for every service, and the try-it page answers. Then every command
block of the README and the guides marked ``<!-- ci: run -->`` runs against that server (with
its port for ``127.0.0.1:8000``), and its output holds what the marker expects.

The install half of the command (``python3 -m pip install -e .``) is what ``.ci/run`` does
before the tests; here the copy goes first on ``PYTHONPATH`` and ``cds-service`` is its
``python -m cds_service.cli``. The port comes from ``CDS_PORT`` so the command runs unchanged.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.server import free_port

pytestmark = pytest.mark.slow  # a server from a copy of the checkout and a CLI per command

REPO = Path(__file__).resolve().parents[2]
INSTALL = "python3 -m pip install -e ."
MARKER = re.compile(r'<!-- ci: run(?:, expect "(?P<expect>[^"]+)")? -->')


def readme_command(marker: str) -> str:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    return lines[lines.index(f"<!-- {marker} -->") + 1].strip()


def as_argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "cds-service", command
    return [sys.executable, "-m", "cds_service.cli", *argv[1:]]


def fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=60, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to copy")
    for name in listed.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    assert not (target / "data").exists()
    return target


def clean_env(clone: Path, port: int) -> dict[str, str]:
    """A newcomer's environment: no CDS_* settings (test ones kept), the copy first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_") or "TEST" in k}
    env.update({"PYTHONPATH": str(clone), "CDS_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    install, _, run = readme_command("serve-command").partition(" && ")
    assert install == INSTALL
    clone = fresh_copy(tmp_path_factory.mktemp("fresh-clone"))
    port = free_port()
    env = clean_env(clone, port)
    out = clone / "serve.out"
    with out.open("w") as sink:
        server = subprocess.Popen(
            as_argv(run), cwd=clone, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, out.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        yield clone, url, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_first_command_serves_and_prints_the_way_once(
    served: tuple[Path, str, dict[str, str]],
) -> None:
    clone, url, _ = served
    text = (clone / "serve.out").read_text()
    assert text.count("local development caller") == 1
    assert text.count(f"{url}/cds-services") == 1
    assert text.count("cds-service demo-call") == 1
    assert f"{url}/dashboard" in text and f"{url}/tryit" in text
    assert (clone / "data" / "trusted-callers.json").is_file()
    assert not text.lstrip().startswith("{")  # readable lines in development


def test_the_card_command_shows_a_card_for_every_service(
    served: tuple[Path, str, dict[str, str]],
) -> None:
    clone, _, env = served
    env = {k: v for k, v in env.items() if k != "CDS_PORT"}  # it finds the service by itself
    result = subprocess.run(
        as_argv(readme_command("card-command")),
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answered = [line for line in result.stdout.splitlines() if line.endswith(": HTTP 200")]
    cards = [line for line in result.stdout.splitlines() if line.startswith("  [")]
    assert len(answered) == len(list((clone / "hooks").glob("*.toml"))) >= 1
    assert len(cards) >= len(answered)


def test_the_try_it_page_answers(served: tuple[Path, str, dict[str, str]]) -> None:
    _, url, _ = served
    page = httpx.get(f"{url}/tryit", timeout=10)
    assert page.status_code == 200
    assert "Send signed call" in page.text


def marked_blocks() -> list[tuple[str, str, str | None]]:
    """(where, the block's commands, the text its output must hold) for every marked block."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = MARKER.fullmatch(line.strip())
            if match is None:
                continue
            block = []
            for following in lines[i + 1 :]:
                if not following.startswith("    "):
                    break
                block.append(following[4:])
            assert block, f"{doc.name}:{i + 1}: marker without an indented block"
            found.append((f"{doc.name}:{i + 1}", "\n".join(block), match["expect"]))
    return found


BLOCKS = marked_blocks()


def test_the_guides_mark_their_commands() -> None:
    where = {w.split(":")[0] for w, _, _ in BLOCKS}
    assert {"README.md", "integration.md", "security.md", "try-it-locally.md"} <= where


@pytest.mark.parametrize(("where", "commands", "expect"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_a_documented_command_runs_as_written(
    served: tuple[Path, str, dict[str, str]], where: str, commands: str, expect: str | None
) -> None:
    clone, url, env = served
    shim = clone / "bin" / "cds-service"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cds_service.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in env.items() if k != "CDS_PORT"}
    env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
    script = commands.replace("http://127.0.0.1:8000", url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where}: {result.stdout}{result.stderr}"
    if expect is not None:
        assert expect in result.stdout, f"{where}: {result.stdout}{result.stderr}"
    if where.startswith("try-it-locally.md"):
        callers = (clone / "data" / "trusted-callers.json").read_text()
        assert "urn:cds-risk:local-ehr" in callers and "https://sandbox.cds-hooks.org" in callers
