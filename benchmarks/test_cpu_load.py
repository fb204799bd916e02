"""benchmarks/bench_cpu_load.py: its dry run end to end (three worker processes, one beside a busy competitor;
about a minute on 2 shared cores, most of it importing torch), and the settings and environments it derives.
No timing is asserted: the figures come from the full run on a quiet machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from bench_cpu_load import Setting, settings, worker_env  # noqa: E402


def test_dry_run_writes_one_table(tmp_path: Path) -> None:
    out = tmp_path / "cpu-load.md"
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_cpu_load.py"), "--dry", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    markdown = out.read_text()
    assert "| 1 thread |" in markdown and "| adaptive |" in markdown
    document = json.loads(out.with_suffix(".json").read_text())
    rows = {row["setting"]: row for row in document["rows"]}
    assert rows["1 thread"]["loaded"]["threads_at_end"] == 1
    for stage in ("pretrain", "warmup", "joint"):
        assert rows["1 thread"]["quiet"][stage] > 0 and rows["adaptive"]["quiet"][stage] > 0
    assert rows["1 thread"]["quiet"]["mpc"] > 0
    assert rows["adaptive"]["loaded"] is None
    assert document["figures"]["loaded_default_vs_quiet_one_thread"] is None
    assert document["figures"]["quiet_default_vs_quiet_best"] > 0


def test_settings_cover_the_counts_that_matter() -> None:
    two = [setting.name for setting in settings(2, dry=False, bf16=False)]
    assert two[:2] == ["2 threads", "1 thread"] and "adaptive" in two
    assert "2 threads, OMP_WAIT_POLICY=PASSIVE" in two and "2 threads, inter-op 1" in two
    assert not any("bf16" in name for name in two)
    assert "1 thread, bf16" in [setting.name for setting in settings(2, dry=False, bf16=True)]
    assert "3 threads" in [setting.name for setting in settings(4, dry=False, bf16=False)]
    assert [setting.name for setting in settings(1, dry=False, bf16=False)][:1] == ["1 thread"]


def test_workers_get_only_the_settings_omp_variables(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert "OMP_NUM_THREADS" not in worker_env(Setting(0)), "the tuner adapts only when it is unset"
    env = worker_env(Setting(2, wait_policy="PASSIVE"))
    assert (env["OMP_NUM_THREADS"], env["OMP_WAIT_POLICY"]) == ("2", "PASSIVE")
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
