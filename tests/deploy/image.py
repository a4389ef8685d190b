"""The image's file layout, environment and entry point, reproduced as a plain directory and
process (no container daemon on the CI machine).

What is the image's own: the project wheel, built from the builder stage's COPY sources with
`pip wheel --no-deps` and installed with `pip install --no-deps --target` at the final stage's
target; the final stage's COPY sources at their destinations; its ENV (absolute paths re-rooted
under a temporary directory, HOME a fresh read-only directory); its WORKDIR, ENTRYPOINT, CMD and
HEALTHCHECK. What is not: the dependencies come from the test's interpreter (same Python minor
version, versions pinned by pyproject.toml, not by a fresh resolve), and the user is whoever runs
the tests (the non-root USER is checked statically), so "read-only" is checked by proving nothing
outside the writable paths changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.deploy import dockerfile

DOCKERFILE = REPO_ROOT / "Dockerfile"
VENV_BIN = "/opt/venv/bin"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def stages() -> list[dockerfile.Stage]:
    return dockerfile.parse(DOCKERFILE)


def final_stage() -> dockerfile.Stage:
    return stages()[-1]


def writable_paths(stage: dockerfile.Stage) -> list[str]:
    """The image's declared writable places: the data and spool directories and /tmp."""
    env = stage.env()
    return [env["CDS_DATA_DIR"], env["CDS_SPOOL_DIR"], "/tmp"]


class ImageRoot:
    """The final stage's file system below ``root``, built the way the Dockerfile builds it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.home = tmp / "home"
        self.stage = final_stage()

    def build(self) -> None:
        builder = stages()[0]
        src = self.tmp / "src"
        for from_stage, sources, dest in builder.copies():
            assert from_stage is None
            for source in sources:
                _copy(REPO_ROOT / source, src / _relative(dest, source))
        wheels = self.tmp / "wheels"
        _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(src))
        (wheel,) = wheels.glob("cds_risk_service-*.whl")
        target = self._install_target()
        _pip("install", "--no-deps", "--target", str(self.path(target)), str(wheel))
        for from_stage, sources, dest in self.stage.copies():
            assert from_stage is None, "the final stage copies only from the build context"
            for source in sources:
                _copy(REPO_ROOT / source, self.path(dest))
        for place in writable_paths(self.stage):
            self.path(place).mkdir(parents=True, exist_ok=True)
        self.home.mkdir()
        self.home.chmod(0o555)

    def _install_target(self) -> str:
        for ins in self.stage.all("RUN"):
            match = re.search(r"--target\s+(\S+)", ins.args)
            if match:
                return match.group(1)
        raise AssertionError("the final stage installs the project wheel with --target")

    def path(self, image_path: str) -> Path:
        """Where an absolute path of the image lives here."""
        return self.root / image_path.lstrip("/")

    def env(self, **config: str) -> dict[str, str]:
        """The image's ENV only (nothing inherited from the test's environment) plus ``config``,
        the orchestrator's variables."""
        python_bin = str(Path(sys.executable).parent)
        env: dict[str, str] = {}
        for key, value in self.stage.env().items():
            value = value.replace("$PATH", BASE_PATH).replace(VENV_BIN, python_bin)
            if key == "HOME":
                value = str(self.home)
            elif key != "PATH" and value.startswith("/") and not value.startswith(python_bin):
                value = str(self.path(value))
            env[key] = value
        env.update(config)
        return env

    @property
    def workdir(self) -> Path:
        ins = self.stage.last("WORKDIR")
        assert ins is not None
        return self.path(ins.args)

    def command(self, args: list[str] | None = None) -> list[str]:
        """ENTRYPOINT + (``args`` or CMD), the image's interpreter swapped for the test's."""
        entry = self.stage.last("ENTRYPOINT")
        cmd = self.stage.last("CMD")
        assert entry is not None and cmd is not None
        argv = dockerfile.exec_form(entry.args)
        argv += dockerfile.exec_form(cmd.args) if args is None else args
        return [self._python(a) for a in argv]

    def cmd(self) -> list[str]:
        cmd = self.stage.last("CMD")
        assert cmd is not None
        return dockerfile.exec_form(cmd.args)

    def healthcheck(self) -> list[str]:
        return [self._python(a) for a in dockerfile.healthcheck_command(self.stage)]

    def _python(self, arg: str) -> str:
        return sys.executable if arg.startswith(VENV_BIN + "/python") else arg

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file outside the writable paths, with size and mtime: what must not change."""
        skip = [self.path(p) for p in writable_paths(self.stage)]
        files: dict[str, tuple[int, int]] = {}
        for base in (self.root, self.home):
            for path in base.rglob("*"):
                if any(path == s or s in path.parents for s in skip):
                    continue
                st = path.lstat()
                files[str(path)] = (st.st_size, st.st_mtime_ns)
        return files

    def run(self, args: list[str], env: dict[str, str], timeout: float = 300) -> str:
        done = subprocess.run(
            self.command(args),
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr[-2000:]}"
        return done.stdout


def _relative(dest: str, source: str) -> str:
    """A builder COPY destination relative to its WORKDIR (``./x`` or ``./``)."""
    if dest.endswith("/") or dest in (".", "./"):
        return str(Path(dest) / Path(source).name)
    return dest


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    else:
        shutil.copy2(source, dest)


def _pip(*args: str) -> None:
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
