"""Several `cds-service serve` processes on one PostgreSQL database behind a real HAProxy (Debian's
package) on loopback: the multi-replica set-up of production, small enough for CI.

HAProxy is configured as a Kubernetes Service plus readiness would act: health checks on
/readyz, a refused connection retried on another replica (the request was never sent), a request
that reached a replica never retried (a CDS call is not idempotent), one server connection per
request, and the name of the replica that answered (or failed) in ``X-Served-By``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT
from tests.utils.server import free_port

HAPROXY_CONFIG = """\
global
    maxconn 512
    log stderr format raw local0
    stats socket {socket} mode 600 level admin
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1
    option http-server-close
frontend cds
    bind 127.0.0.1:{port}
    default_backend replicas
    http-after-response set-header X-Served-By %s
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fall 2 rise 2
{servers}
"""


def haproxy_path() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


class Replica:
    """One serving process; its spool directory outlives restarts (a pod's volume)."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.spool = tmp / f"spool-{name}"
        self.log = tmp / f"{name}.log"
        self.env = dict(env, CDS_SPOOL_DIR=str(self.spool))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log
            )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def terminate(self, timeout: float = 45) -> int:
        """SIGTERM and wait, as the kubelet does after preStop."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def spooled(self) -> list[Path]:
        return list(self.spool.glob("*.jsonl")) if self.spool.exists() else []

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class HAProxy:
    def __init__(self, tmp: Path, replicas: list[Replica]) -> None:
        exe = haproxy_path()
        assert exe is not None
        self.port = free_port()
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
        self.config = tmp / "haproxy.cfg"
        self.socket = tmp / "haproxy.sock"
        self.config.write_text(
            HAPROXY_CONFIG.format(port=self.port, servers=servers, socket=self.socket)
        )
        check = subprocess.run([exe, "-c", "-f", str(self.config)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        self.log = tmp / "haproxy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([exe, "-db", "-f", str(self.config)],
                                            stdout=log, stderr=log)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        """One command on HAProxy's runtime API (what an orchestrator's endpoint update does)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def sessions(self, server: str) -> int:
        """Requests HAProxy has in progress on ``server`` (``scur`` of ``show stat``)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname") == server:
                return int(row["scur"] or 0)
        raise AssertionError(f"no server {server}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for(predicate: object, timeout: float = 60.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def replica_env(**values: str) -> dict[str, str]:
    """The test interpreter's environment minus any CDS_* setting, plus ``values``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    base.update(values)
    return base
