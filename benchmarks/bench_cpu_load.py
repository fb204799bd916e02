"""Quickstart throughput under thread settings, on a quiet machine and beside one busy process.

With threads = cores, torch's OpenMP threads wait on each other, and one busy neighbour (a browser, an
editor) can slow a CPU step 4x. For every setting (threads = cores, cores - 1, 1; OMP_WAIT_POLICY=PASSIVE;
one inter-op thread; bf16 autocast; the run-time tuner, train.threads = 0) this times the quickstart's
pretrain, warm-up and joint steps (the real cola_train step on synthetic clips of its shape) and one MPC step,
each setting in a fresh process (cpu_load_worker.py), quiet and with a pure-Python busy loop running beside
it. It prints one table and the issue's two figures, the quickstart's time weighed by its stages' steps:

* loaded default / quiet 1 thread (target >= 0.90),
* quiet default / quiet best (target >= 0.90: a loss of at most 10% when quiet).

Run it on an otherwise quiet machine, without nice (the competitor gets this script's priority):

    uv run python benchmarks/bench_cpu_load.py --out benchmarks/results/<date>-cpu-load.md

``--dry`` runs two settings for a step or two on 3-frame clips (CI: benchmarks/test_cpu_load.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "cpu_load_worker.py"
STAGES = ("pretrain", "warmup", "joint")
COMPETITOR = "while True:\n    pass\n"


@dataclass(frozen=True)
class Setting:
    """``threads``: train.threads (0: the tuner); ``wait_policy``: OMP_WAIT_POLICY; ``interop``: inter-op
    threads (None: torch's default)."""

    threads: int
    wait_policy: str | None = None
    interop: int | None = None
    bf16: bool = False

    @property
    def name(self) -> str:
        parts = ["adaptive" if self.threads == 0 else f"{self.threads} thread{'s' * (self.threads > 1)}"]
        if self.wait_policy:
            parts.append(f"OMP_WAIT_POLICY={self.wait_policy}")
        if self.interop is not None:
            parts.append(f"inter-op {self.interop}")
        if self.bf16:
            parts.append("bf16")
        return ", ".join(parts)


@dataclass(frozen=True)
class Sizes:
    warmup_steps: int
    steps: int
    adaptive_steps: int
    mpc_steps: int
    batch: int
    timeout_s: int


FULL = Sizes(warmup_steps=3, steps=10, adaptive_steps=80, mpc_steps=5, batch=8, timeout_s=1200)
DRY = Sizes(warmup_steps=1, steps=1, adaptive_steps=2, mpc_steps=1, batch=1, timeout_s=240)


def settings(cores: int, dry: bool, bf16: bool) -> list[Setting]:
    """The settings worth a row: every distinct count in (cores, cores - 1, 1), then the switches on the
    count where they can matter (several threads), bf16 on each count when asked (on a CPU without native
    bf16 it ran 12x slower: docs/decisions.md), and the tuner (with and without the passive wait policy)."""
    if dry:
        return [Setting(1), Setting(0)]
    counts = list(dict.fromkeys(count for count in (cores, cores - 1, 1) if count >= 1))
    rows = [Setting(count) for count in counts]
    rows += [Setting(cores, wait_policy="PASSIVE"), Setting(cores, interop=1)] if cores > 1 else []
    rows += [Setting(count, bf16=True) for count in counts] if bf16 else []
    rows += [Setting(0), Setting(0, wait_policy="PASSIVE")]
    return rows


def loads(setting: Setting, dry: bool) -> tuple[str, ...]:
    """Quiet and loaded; the dry run starts the competitor for one thread only (several threads beside a
    busy process are the slow case this measures, minutes on a shared 2-core CI machine)."""
    return ("quiet", "loaded") if not dry or setting.threads == 1 else ("quiet",)


def worker_env(setting: Setting) -> dict[str, str]:
    """This environment without any OMP_* a caller set, plus the setting's: a fixed count goes in
    OMP_NUM_THREADS too, as a user would set it; the tuner gets none (it adapts only when it is unset)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OMP_")}
    if setting.threads:
        env["OMP_NUM_THREADS"] = str(setting.threads)
    if setting.wait_policy:
        env["OMP_WAIT_POLICY"] = setting.wait_policy
    return env


@contextlib.contextmanager
def competitor(loaded: bool) -> Iterator[None]:
    """One busy process at this process's priority while the block runs (nothing when not ``loaded``)."""
    if not loaded:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        yield
    finally:
        process.kill()
        process.wait(timeout=30)


def measure(setting: Setting, loaded: bool, sizes: Sizes, dry: bool) -> dict[str, float | None]:
    """One worker process's rates; RuntimeError with its output when it fails or runs past the limit."""
    payload = {**asdict(setting), **asdict(sizes), "dry": dry}
    with competitor(loaded):
        try:
            run = subprocess.run(
                [sys.executable, str(WORKER), json.dumps(payload)],
                env=worker_env(setting),
                capture_output=True,
                text=True,
                timeout=sizes.timeout_s,
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{setting.name} ran past {sizes.timeout_s} s") from error
    if run.returncode != 0:
        raise RuntimeError(f"{setting.name} ({'loaded' if loaded else 'quiet'}) failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def quickstart_seconds(rates: dict[str, float | None] | None) -> float | None:
    """The quickstart's training time at these stage rates (None: not measured)."""
    if rates is None:
        return None
    return sum(steps / rates[stage] for stage, steps in quickstart_steps().items())


@functools.cache
def quickstart_steps() -> dict[str, int]:
    """Steps of each stage in the quickstart preset (configs/quickstart.toml)."""
    from cola_train import load_config

    config = load_config(preset="quickstart")
    return {stage: config.stage(stage).steps for stage in STAGES}


def figures(rows: list[dict]) -> dict[str, float | None]:
    """The issue's two figures from the quickstart times (None where a setting was not measured)."""

    def seconds(name: str, load: str) -> float | None:
        row = next((row for row in rows if row["setting"] == name), None)
        return None if row is None else quickstart_seconds(row[load])

    quiet_one, loaded_default, quiet_default = (
        seconds("1 thread", "quiet"),
        seconds("adaptive", "loaded"),
        seconds("adaptive", "quiet"),
    )
    # bf16 changes what is computed; the default's loss is against the best fp32 setting.
    fp32 = [
        seconds
        for row in rows
        if "bf16" not in row["setting"] and (seconds := quickstart_seconds(row["quiet"]))
    ]
    return {
        "loaded_default_vs_quiet_one_thread": None
        if None in (quiet_one, loaded_default)
        else quiet_one / loaded_default,
        "quiet_default_vs_quiet_best": None if quiet_default is None else min(fp32) / quiet_default,
    }


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def table(rows: list[dict], found: dict[str, float | None], sizes: Sizes, dry: bool) -> str:
    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    def figure(value: float | None, target: str) -> str:
        return "not measured" if value is None else f"**{value:.2f}** (target {target})"

    columns = [*STAGES, "mpc"]
    header = "| setting | " + " | ".join(f"{load} {c}" for load in ("quiet", "loaded") for c in columns)
    lines = [
        f"# CPU throughput under load{' (dry run: not a measurement)' if dry else ''}",
        "",
        f"{datetime.date.today().isoformat()}, {machine()}, Python {platform.python_version()}. Steps/s of "
        f"the quickstart's training steps (batch {sizes.batch}) and of one MPC step (`cpu` planning preset), "
        "quiet and with one busy process at the same priority: timed steps over their time, "
        f"{sizes.steps} steps per stage at a fixed count and {sizes.adaptive_steps} with the tuner "
        f"(train.threads = 0, its probes included), after {sizes.warmup_steps} warm-up steps; MPC: 1 / the "
        "median step (planning has no tuner: n/a). Each setting ran in a fresh process.",
        "",
        header + " | quiet quickstart s | loaded quickstart s |",
        "|" + "---|" * (2 * len(columns) + 3),
    ]
    for row in rows:
        cells = [rate(row[load] and row[load][c]) for load in ("quiet", "loaded") for c in columns]
        times = [rate(quickstart_seconds(row[load])) for load in ("quiet", "loaded")]
        lines.append(f"| {row['setting']} | " + " | ".join(cells + times) + " |")
    lines += [
        "",
        "Quickstart time: the steps of configs/quickstart.toml ("
        + ", ".join(f"{stage} {steps}" for stage, steps in quickstart_steps().items())
        + ") at these rates.",
        "",
        "- loaded adaptive vs quiet 1 thread: "
        + figure(found["loaded_default_vs_quiet_one_thread"], ">= 0.90"),
        "- quiet adaptive vs the quiet best fp32 setting: "
        + figure(found["quiet_default_vs_quiet_best"], ">= 0.90"),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write (a .json beside it)")
    parser.add_argument(
        "--dry", action="store_true", help="two settings, a step or two on short clips: checks that it runs"
    )
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast on each thread count")
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="NAME",
        help="time only these rows (names as in the table, e.g. 'adaptive' '1 thread')",
    )
    parser.add_argument(
        "--loads",
        nargs="+",
        choices=("quiet", "loaded"),
        default=["quiet", "loaded"],
        help="which loads to time",
    )
    parser.add_argument("--steps", type=int, help="timed steps per stage for every setting (the tuner's too)")
    args = parser.parse_args(argv)
    sizes = DRY if args.dry else FULL
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps must be >= 1, got {args.steps}")
        sizes = dataclasses.replace(sizes, steps=args.steps, adaptive_steps=args.steps)
    cores = len(os.sched_getaffinity(0))
    chosen = settings(cores, args.dry, args.bf16)
    if args.settings:
        unknown = set(args.settings) - {setting.name for setting in chosen}
        if unknown:
            parser.error(f"unknown settings {sorted(unknown)}; choose from {[s.name for s in chosen]}")
        chosen = [setting for setting in chosen if setting.name in args.settings]
    rows = []
    for setting in chosen:
        row: dict = {"setting": setting.name, "quiet": None, "loaded": None}
        for load in (load for load in loads(setting, args.dry) if load in args.loads):
            row[load] = measure(setting, load == "loaded", sizes, args.dry)
            print(f"{setting.name}, {load}: {row[load]}", flush=True)
        rows.append(row)
    found = figures(rows)
    markdown = table(rows, found, sizes, args.dry)
    print(markdown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    args.out.with_suffix(".json").write_text(
        json.dumps({"machine": machine(), "sizes": asdict(sizes), "rows": rows, "figures": found}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
