"""benchmarks/gpu_suite.py: its dry run end to end (every task on the CPU at tiny sizes: 30-50 s on 2 cores
shared with other jobs, half of it importing torch), the per-task time limit and crash handling, and the
figures it derives."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from benchtools import gpu_peaks  # noqa: E402
from gpu_suite import TASKS, derive, run_task, table  # noqa: E402


def test_dry_run_checks_every_kernel_and_writes_one_table(tmp_path):
    # Peaks for the CPU so that the % of peak and MFU columns are computed as on a GPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLA_PEAK_TBPS": "0.05", "COLA_PEAK_TFLOPS": "1"}
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--dry", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (markdown,) = tmp_path.glob("*-cpu-dry.md")
    document = json.loads(markdown.with_suffix(".json").read_text())
    rows = {row["name"]: row for row in document["rows"]}
    assert [row for row in rows.values() if row["error"]] == []
    kernels = ("nearest_code", "adaln_modulate", "gated_residual")
    checks = [f"check {kernel} {dtype}" for kernel in kernels for dtype in ("fp32", "bf16", "fp16")]
    assert all(rows[name]["result"] == "pass" for name in checks)
    benchmarks = [name for name in rows if not name.startswith("check ")]
    assert [name.split()[0] for name in benchmarks] == ["nearest_code"] * 2 + ["adaln_modulate"] * 2 + [
        "gated_residual"
    ] * 2 + ["DiT", "MPC"]
    for name in benchmarks:
        row = rows[name]
        assert row["seconds"] > 0 and row["result"] in ("pass", "FAIL", "unknown"), name
        if row.get("bytes"):
            assert row["hbm_fraction"] > 0 and row["vs_eager"] > 0, name
    assert rows["adaln_modulate fwd+bwd bf16 T=32 C=48"]["vs_compile"] > 0
    assert next(row for name, row in rows.items() if name.startswith("DiT"))["mfu"] > 0
    assert document["peaks"]["bf16_flops"] == 1e12 and document["dry"] is True
    text = markdown.read_text()
    assert (
        "| benchmark | time | GB/s | % of HBM peak | MFU | vs eager | vs compile | target | result |" in text
    )
    assert text.count("\n| ") == len(rows) + 1  # the header and one line per row
    assert "| benchmark | time |" in run.stdout and len(TASKS) == 6


def _emit_then(action):
    def work(emit):
        emit({"kind": "row", "name": "finished", "seconds": 1.0})
        action()

    return work


def test_a_hung_task_is_killed_at_its_limit_and_keeps_its_rows(tmp_path):
    started = time.monotonic()
    records = run_task("hang", _emit_then(lambda: time.sleep(60)), 1.0, tmp_path)
    assert time.monotonic() - started < 10
    assert [r["name"] for r in records] == ["finished", "hang (task)"]
    assert records[1]["error"].startswith("killed at its 1 s limit after 1 row(s)")


def test_a_crash_becomes_a_row_with_its_error(tmp_path):
    def fail():
        raise ValueError("bad size")

    records = run_task("raises", _emit_then(fail), 30, tmp_path)
    assert records[0]["name"] == "finished"
    assert "ValueError: bad size" in records[1]["error"] and "Traceback" in records[1]["error"]

    def die():
        print("about to die", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    records = run_task("dies", _emit_then(die), 30, tmp_path)
    assert records[1]["error"].startswith("died of signal 9 after 1 row(s)\n")
    assert "about to die" in records[1]["error"]  # the tail of the task's output


def test_peaks_come_from_the_device_name_with_a_fallback(monkeypatch):
    monkeypatch.delenv("COLA_PEAK_TBPS", raising=False)
    monkeypatch.delenv("COLA_PEAK_TFLOPS", raising=False)
    assert gpu_peaks("NVIDIA H100 80GB HBM3")[:2] == (3.35e12, 989e12)
    assert gpu_peaks("NVIDIA H100 PCIe")[:2] == (2.0e12, 756e12)
    assert gpu_peaks("NVIDIA H200")[:2] == (4.8e12, 989e12)
    hbm, flops, source = gpu_peaks("Some Future GPU")
    assert hbm is None and flops is None and "no table entry for 'Some Future GPU'" in source
    monkeypatch.setenv("COLA_PEAK_TFLOPS", "500")
    assert gpu_peaks("NVIDIA H200")[1] == 500e12 and "overridden by COLA_PEAK_TFLOPS" in gpu_peaks("x")[2]


@pytest.mark.parametrize(
    ("compile_seconds", "hbm_peak", "result"),
    [(1.2e-3, 4.8e12, "pass"), (0.9e-3, 4.8e12, "FAIL"), (1.2e-3, None, "unknown")],
)
def test_derive_turns_raw_figures_into_the_table_columns(compile_seconds, hbm_peak, result):
    row = {
        "kind": "row",
        "name": "adaln_modulate fwd",
        "seconds": 1e-3,
        "bytes": 4e9,
        "eager_seconds": 2.5e-3,
        "compile_seconds": compile_seconds,
        "targets": [["hbm_fraction", ">=", 0.8], ["vs_eager", ">=", 2.0], ["vs_compile", ">=", 1.0]],
        "error": None,
    }
    derived = derive(row, hbm_peak, 989e12)
    assert derived["gbps"] == pytest.approx(4000) and derived["vs_eager"] == pytest.approx(2.5)
    assert derived["result"] == result
    assert derived["hbm_fraction"] == (None if hbm_peak is None else pytest.approx(4e12 / hbm_peak))
    assert derive({**row, "error": "compile: boom"}, hbm_peak, None)["result"] == "ERROR"
    line = table([derived]).splitlines()[-1]
    assert "| 1000.0 µs |" not in line and "| 1.00 ms | 4000 |" in line
    assert ">= 80% HBM, >= 2.0x eager, >= 1.0x compile" in line
