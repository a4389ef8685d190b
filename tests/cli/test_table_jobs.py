"""`cds-service table --jobs N`, `--shard K/N` and `--merge`, and `train`'s table with two
processes: the same table and the same summary whatever the number of processes or shards."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cds_devtools.synth import generate_cohort
from cds_service.cli import ExitCode, app
from cds_service.training.train import build_table, table_sha256
from fhir_mappers.spec import load_spec
from tests.conftest import MODELS_DIR


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, ed_patients=50, post_mi_patients=10, seed=5)
    return out


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def _summary(output: str) -> list[str]:
    """The printed summary without the line naming the file written."""
    return [line for line in output.splitlines() if "resources from" not in line]


def _table(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, ["table", "ed-admission", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_jobs_give_the_same_table_and_summary(runner, export, tmp_path):
    one = _table(runner, "--export", str(export), "--out", str(tmp_path / "1.csv"), "--jobs", "1")
    two = _table(runner, "--export", str(export), "--out", str(tmp_path / "2.csv"), "--jobs", "2")
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert "partition: 100%" in one and "extract: 100%" in two  # the bars, on stderr

    quiet = [
        _table(
            runner,
            "--export",
            str(export),
            "--out",
            str(tmp_path / f"q{n}.csv"),
            "--jobs",
            n,
            "--no-progress",
        )
        for n in ("1", "2")
    ]
    assert "partition" not in quiet[0] + quiet[1] and "extract" not in quiet[0] + quiet[1]
    assert _summary(quiet[0]) == _summary(quiet[1])
    assert "kept " in quiet[0]
    assert (tmp_path / "q2.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()


def test_shards_then_merge_give_the_whole_table(runner, export, tmp_path):
    whole = _table(
        runner, "--export", str(export), "--out", str(tmp_path / "whole.csv"), "--no-progress"
    )
    parts = tmp_path / "parts"
    for k in range(2):
        out = _table(
            runner,
            "--export",
            str(export),
            "--out",
            str(parts / f"ed-{k}.csv"),
            "--shard",
            f"{k}/2",
            "--jobs",
            "1",
            "--no-progress",
        )
        assert f"shard {k}/2: " in out
    merged = _table(runner, "--merge", str(parts), "--out", str(tmp_path / "merged.csv"))
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    expected = [line for line in _summary(whole) if not line.startswith("site terminology")]
    assert _summary(merged) == expected
    assert any(line.startswith("kept ") for line in expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2/2"], "K must be at least 0 and below N"),
        (["--shard", "half"], "is not K/N"),
        (["--merge", "no-such-folder"], "no partial tables"),
    ],
)
def test_bad_shard_or_merge_is_exit_3_with_a_clear_message(runner, export, args, message):
    result = runner.invoke(app, ["table", "ed-admission", "--export", str(export), *args])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert message in result.output


def test_jobs_below_one_are_a_usage_error(runner, export):
    result = runner.invoke(app, ["table", "ed-admission", "--export", str(export), "--jobs", "0"])
    assert result.exit_code == ExitCode.USAGE


def test_the_training_table_is_the_same_with_two_processes(export):
    """What `train --jobs` hashes into the manifest (table_sha256) does not depend on N."""
    spec = load_spec(MODELS_DIR / "ed-admission" / "features.toml")
    one, one_stats = build_table(export, spec, jobs=1)
    two, two_stats = build_table(export, spec, jobs=2)
    assert table_sha256(one) == table_sha256(two)
    assert one_stats == two_stats
    assert len(one.y) > 40
