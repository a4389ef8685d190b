"""The Dockerfile itself, read statically: what it copies exists and reaches the build context,
it builds a wheel in a builder stage and installs no compiler in the final one, it runs as a
numeric non-root user (so Kubernetes can verify runAsNonRoot), in exec form (the server is PID 1
and gets SIGTERM itself), and bakes no secret into the image."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT
from tests.deploy import dockerfile
from tests.deploy.image import DOCKERFILE, final_stage, stages

COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|gfortran|cc)\b")
SECRETISH = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL", re.IGNORECASE)


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is an allow-list"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    names = {s.name for s in stages() if s.name}
    copied = 0
    for stage in stages():
        for from_stage, sources, _ in stage.copies():
            if from_stage is not None:
                assert from_stage in names
                continue
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
                assert source.rstrip("/") in included, f"{source} is not re-included"
                copied += 1
    assert copied >= 7
    never = {"data", "tests", ".git", "bench", "cds_devtools"}
    assert not included & never


def test_a_builder_stage_makes_the_wheel_and_the_final_stage_has_no_compiler() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    builder, final = all_stages[0], all_stages[-1]
    assert builder.name and any("pip wheel" in i.args for i in builder.all("RUN"))
    match = re.fullmatch(r"python:3\.(\d+)-slim(-\w+)?", final.base)
    assert match and int(match.group(1)) >= 11, final.base
    assert final.base == builder.base, "the wheel is built for the runtime's Python"
    for ins in final.all("RUN"):
        installs = re.findall(r"apt-get install ([^&]*)", ins.args)
        for packages in installs:
            assert not COMPILERS.search(packages), packages


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    user = final_stage().last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so runAsNonRoot can be verified"
    assert int(uid) != 0 and int(gid) != 0
    # the user is created with that uid in the final stage
    assert any(f"--uid {uid}" in i.args for i in final_stage().all("RUN"))


def test_one_process_in_exec_form_with_a_healthcheck_that_needs_no_curl() -> None:
    stage = final_stage()
    for keyword in ("ENTRYPOINT", "CMD"):
        ins = stage.last(keyword)
        assert ins is not None
        dockerfile.exec_form(ins.args)  # the shell form would put /bin/sh in front as PID 1
    check = dockerfile.healthcheck_command(stage)
    assert check[0].endswith("/python") and "/healthz" in " ".join(check)
    assert "curl" not in DOCKERFILE.read_text() and "wget" not in DOCKERFILE.read_text()


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in stages():
        for key in stage.env():
            assert not SECRETISH.search(key), key
        for ins in stage.all("ARG"):
            assert not SECRETISH.search(ins.args), ins.args
