"""Every GPU figure the issues ask for, in one run of under 8 minutes on one H100 or H200.

First every Triton kernel against its PyTorch reference (forward and backward, fp32/bf16/fp16), then each GPU
benchmark at the issues' sizes (nearest-code, fused AdaLN modulation and gated residual, the DiT `base`
training step, one MPC step). Prints one table and writes it to ``<out>/<date>-<gpu>.md`` and ``.json``.

Each task runs in a child forked from this process (so torch and the packages are imported once) under its
own time limit, within a total budget: a hung or crashed benchmark is killed and recorded as a row with its
error, and the run goes on. ``--dry`` runs the same tasks on the CPU at tiny sizes (Triton's interpreter for
the kernels), which CI does so this script cannot rot.

    benchmarks/gpu.sh                      # or: uv run python benchmarks/gpu_suite.py
    uv run python benchmarks/gpu_suite.py --dry --out /tmp/gpu-dry
    uv run python benchmarks/gpu_suite.py --only nearest_code,train_step   # re-run some tasks

Exit status 1 when a row errored or a kernel disagrees with its reference; a missed performance target is a
result, shown in the table, not a failure of the script.
"""

import argparse
import contextlib
import datetime
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from benchtools import gpu_peaks  # noqa: E402

# Seconds; the sum stays under the budget, which stays under 8 minutes with this process's own start-up.
BUDGET_S = 460.0


@dataclass(frozen=True)
class Task:
    name: str
    function: str  # in gpu_tasks
    limit_s: float


TASKS = (
    # checks: some 40 Triton compiles on a cold cache; the kernel benchmarks: one inductor compile per size.
    Task("checks", "kernel_checks", 90),
    Task("nearest_code", "nearest_code_bench", 100),
    Task("adaln_modulate", "adaln_bench", 90),
    Task("gated_residual", "gated_residual_bench", 60),
    Task("train_step", "train_step_bench", 80),
    Task("mpc_step", "mpc_step_bench", 40),
)
LOG_TAIL_LINES = 15


def run_task(
    name: str, work: Callable[[Callable[[dict], None]], None], limit_s: float, scratch: Path
) -> list[dict[str, Any]]:
    """Run ``work(emit)`` in a forked child for at most ``limit_s`` seconds; return the records it emitted.

    A child that raises, dies or overruns leaves its finished records plus one row naming what went wrong
    (with the tail of its output, which goes to ``scratch/<name>.log``).
    """
    records_path, log_path = scratch / f"{name}.jsonl", scratch / f"{name}.log"
    records_path.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(work, records_path, log_path)
    # Its own process group (set on both sides, against the race): killing it also kills what it started,
    # such as inductor's compile workers.
    with contextlib.suppress(PermissionError, ProcessLookupError):  # the child got there first, or ended
        os.setpgid(pid, pid)
    deadline = time.monotonic() + limit_s
    status = None
    try:
        while status is None and time.monotonic() < deadline:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wait_status
            else:
                time.sleep(0.05)
    finally:  # past the limit, or Ctrl-C here (which the child, in its own group, does not get)
        if status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    records = _read_records(records_path)
    tail = _log_tail(log_path)
    rows = [r for r in records if r["kind"] == "row"]
    if status is None:
        message = f"killed at its {limit_s:.0f} s limit after {len(rows)} row(s)"
    elif os.WIFSIGNALED(status):
        message = f"died of signal {os.WTERMSIG(status)} after {len(rows)} row(s)"
    elif os.WEXITSTATUS(status) != 0:
        errors = [r["error"] for r in records if r["kind"] == "error"]
        message = errors[0] if errors else f"exited with status {os.WEXITSTATUS(status)}"
        tail = ""  # the traceback says it
    else:
        return records
    failure = {"kind": "row", "name": f"{name} (task)", "error": message + (f"\n{tail}" if tail else "")}
    return [r for r in records if r["kind"] != "error"] + [failure]


def _child(work: Callable[[Callable[[dict], None]], None], records_path: Path, log_path: Path) -> None:
    """The forked side of run_task: never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # Python's streams too: under pytest they are not file descriptors 1 and 2.
        sys.stdout = sys.stderr = os.fdopen(log, "w", buffering=1)
        with records_path.open("w", buffering=1) as records:
            emit = lambda record: records.write(json.dumps(record) + "\n")
            try:
                work(emit)
                code = 0
            except BaseException:
                emit({"kind": "error", "error": traceback.format_exc()})
    except BaseException:
        traceback.print_exc()  # into the log, whose tail run_task reports
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # the line a killed child was writing
            records.append(json.loads(line))
    return records


def _log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])


# ---- the table ---------------------------------------------------------------------------------------

TARGET_LABELS = {
    "vs_eager": "{}x eager",
    "vs_compile": "{}x compile",
    "hbm_fraction": "{:.0%} HBM",
    "mfu": "{:.0%} MFU",
    "seconds": "{:g} s",
    "memory_bytes": "O(N) memory (<= {:.1f} MiB)",
}


def derive(row: dict[str, Any], hbm_peak: float | None, flops_peak: float | None) -> dict[str, Any]:
    """``row`` plus its derived figures (GB/s, fractions of peak, speed-ups) and its result.

    Result: ``ERROR`` when anything in the row failed, ``FAIL``/``pass`` for a kernel check or against every
    target, ``unknown`` when a target's figure is missing (a GPU without peaks, memory on CPU).
    """
    seconds = row.get("seconds")
    derived: dict[str, Any] = {"seconds": seconds, "memory_bytes": row.get("memory_bytes")}
    derived["gbps"] = row["bytes"] / seconds / 1e9 if seconds and row.get("bytes") else None
    derived["hbm_fraction"] = derived["gbps"] * 1e9 / hbm_peak if derived["gbps"] and hbm_peak else None
    derived["mfu"] = (
        row["flops"] / seconds / flops_peak if seconds and row.get("flops") and flops_peak else None
    )
    for baseline in ("eager", "compile"):
        other = row.get(f"{baseline}_seconds")
        derived[f"vs_{baseline}"] = other / seconds if seconds and other else None
    if row.get("error"):
        result = "ERROR"
    elif "check" in row:
        result = "pass" if row["check"]["passed"] else "FAIL"
    else:
        outcomes = []
        for metric, op, threshold in row.get("targets", []):
            value = derived[metric]
            outcomes.append(
                None if value is None else value >= threshold if op == ">=" else value <= threshold
            )
        result = "FAIL" if False in outcomes else "unknown" if None in outcomes else "pass"
    return {**row, **derived, "result": result}


def _target_text(row: dict[str, Any]) -> str:
    if "target" in row:
        return row["target"]
    parts = []
    for metric, op, threshold in row.get("targets", []):
        value = threshold / 2**20 if metric == "memory_bytes" else threshold
        label = TARGET_LABELS[metric].format(value)
        parts.append(label if metric == "memory_bytes" else f"{op} {label}")
    return ", ".join(parts) or "—"


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row.get("memory_bytes") is not None:
        eager = row.get("eager_memory_bytes")
        notes.append(
            f"peak extra {row['memory_bytes'] / 2**20:.1f} MiB"
            + (f" (eager {eager / 2**20:.1f} MiB)" if eager is not None else "")
        )
    if row.get("tokens") and row.get("seconds"):
        notes.append(f"{row['tokens'] / row['seconds']:,.0f} tokens/s")
    if "check" in row:
        notes.append(row["check"]["detail"].splitlines()[0][:120])
    if row.get("error"):
        notes.append("error, see below")
    return "; ".join(notes)


def table(rows: list[dict[str, Any]]) -> str:
    """The derived rows as one Markdown table."""
    number = lambda value, fmt: "—" if value is None else fmt.format(value)
    lines = [
        "| benchmark | time | GB/s | % of HBM peak | MFU | vs eager | vs compile | target | result | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["name"],
            _seconds_text(row["seconds"]),
            number(row["gbps"], "{:.0f}" if (row["gbps"] or 0) >= 10 else "{:.3g}"),
            number(row["hbm_fraction"], "{:.0%}"),
            number(row["mfu"], "{:.1%}"),
            number(row["vs_eager"], "{:.2f}x"),
            number(row["vs_compile"], "{:.2f}x"),
            _target_text(row),
            f"**{row['result']}**" if row["result"] in ("FAIL", "ERROR") else row["result"],
            _notes(row),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def report(
    rows: list[dict[str, Any]],
    device: dict[str, Any],
    dry: bool,
    only: str | None,
    wall_s: float,
    out: Path,
) -> tuple[list[dict[str, Any]], str, Path]:
    """Derive every row and write them to ``<out>/<date>-<gpu>[-dry][-<only>].md`` and ``.json``.

    A run of some tasks (``only``) gets its own files, so that it does not overwrite the full run's. Returns
    the derived rows, the Markdown and its path.
    """
    hbm_peak, flops_peak, peaks_source = gpu_peaks(device["name"])
    derived = [derive(row, hbm_peak, flops_peak) for row in rows]
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    stem = f"{date}-{_slug(device['name'])}" + ("-dry" if dry else "") + (f"-{_slug(only)}" if only else "")
    command = (
        "uv run python benchmarks/gpu_suite.py"
        + (" --dry" if dry else "")
        + (f" --only {only}" if only else "")
    )
    peak_text = (
        f"{'—' if hbm_peak is None else f'{hbm_peak / 1e12:g} TB/s'} HBM, "
        f"{'—' if flops_peak is None else f'{flops_peak / 1e12:g} TFLOP/s'} dense bf16 ({peaks_source})"
    )
    errors = [row for row in derived if row.get("error") or ("check" in row and row["result"] == "FAIL")]
    lines = [
        f"# GPU suite — {date}, {device['name']}{' (dry run on the CPU, tiny sizes)' if dry else ''}",
        "",
        f"`{command}`: {wall_s:.0f} s of the "
        f"{BUDGET_S:.0f} s budget; torch {device.get('torch')}, triton {device.get('triton')}, "
        f"CUDA {device.get('cuda')}.",
        f"Peaks: {peak_text}. Times are medians of timed calls (CUDA events) after a warm-up; GB/s counts "
        "the bytes the op must move; MFU counts the training step's FLOPs analytically "
        "(bench_train_step._train_flops_per_step).",
        "",
        table(derived),
    ]
    if errors:
        lines += ["", "## Errors and failed checks", ""]
        for row in errors:
            text = row.get("error") or row["check"]["detail"]
            lines += [f"**{row['name']}**", "", "```", text.strip(), "```", ""]
    markdown = "\n".join(lines).rstrip() + "\n"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.md"
    path.write_text(markdown)
    document = {
        "date": date,
        "device": device,
        "dry": dry,
        "peaks": {"hbm_bytes_per_s": hbm_peak, "bf16_flops": flops_peak, "source": peaks_source},
        "wall_s": wall_s,
        "rows": derived,
    }
    path.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    return derived, markdown, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes, kernels in Triton's interpreter")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "results", help="where the .md/.json go")
    parser.add_argument("--only", help=f"comma-separated tasks out of {', '.join(t.name for t in TASKS)}")
    args = parser.parse_args(argv)
    tasks = TASKS
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {t.name for t in TASKS})
        if unknown:
            parser.error(f"unknown task(s) {unknown}; choose from {[t.name for t in TASKS]}")
        tasks = tuple(t for t in TASKS if t.name in names)

    if args.dry:
        if "triton" in sys.modules:
            raise SystemExit("--dry needs a fresh process: triton was imported before TRITON_INTERPRET=1")
        os.environ["TRITON_INTERPRET"] = "1"
    # torch.cuda.is_available() through NVML: the CUDA runtime's check would initialise CUDA in this process
    # and every forked child would then fail to use it.
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    import gpu_tasks
    import torch

    if not args.dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible; `--dry` runs the suite on the CPU at tiny sizes")

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="cola-gpu-suite-"))
    device: dict[str, Any] = {"name": "unknown-gpu"}
    rows: list[dict[str, Any]] = []
    for number, task in enumerate(tasks, 1):
        left = BUDGET_S - (time.monotonic() - started)
        if left < 5:
            rows.append(
                {"kind": "row", "name": f"{task.name} (task)", "error": "skipped: the budget is spent"}
            )
            continue
        limit = min(task.limit_s, left)
        print(f"[{number}/{len(tasks)}] {task.name} (limit {limit:.0f} s) ...", end=" ", flush=True)
        begun = time.monotonic()
        work = getattr(gpu_tasks, task.function)
        records = run_task(task.name, lambda emit, work=work: work(args.dry, emit), limit, scratch)
        device = next((r for r in records if r["kind"] == "device"), None) or device
        task_rows = [r for r in records if r["kind"] == "row"]
        failed = sum(1 for r in task_rows if r.get("error"))
        print(f"{time.monotonic() - begun:.1f} s, {len(task_rows)} row(s), {failed} with errors", flush=True)
        rows += task_rows
    derived, markdown, path = report(rows, device, args.dry, args.only, time.monotonic() - started, args.out)
    print(f"\n{markdown}\nwritten to {path} and {path.with_suffix('.json').name}; task logs in {scratch}")
    broken = [r for r in derived if r["result"] == "ERROR" or ("check" in r and r["result"] == "FAIL")]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
