"""The reproduction (cola_eval.reproduction, benchmarks/reproduce.py) at its `smoke` size: the experiment's
plan and jobs, its claim checks, and one end-to-end run on two workers that is killed mid-way and resumed (toy
models, a handful of steps; about a minute on 2 busy cores), whose resumed call adds the gradient-path
ablations."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from cola_eval.reproduction.cli import sigterm_as_exit, threads_per_worker
from cola_eval.reproduction.driver import Driver
from cola_eval.reproduction.gradient_summary import carrier
from cola_eval.reproduction.jobs import (
    InlineWorkers,
    Job,
    JobFailed,
    ProcessWorkers,
    makespan,
    plan_jobs,
    run_jobs,
)
from cola_eval.reproduction.plan import (
    GRADIENT_ABLATIONS,
    Experiment,
    adaptive_joint_branch,
    branches,
    gradient_ablation_rows,
    methods,
    run_config,
    size_config,
)
from cola_eval.reproduction.summary import CLAIMS, FINAL_BLOCK_ERROR, tie_threshold, verdict

SMOKE = size_config("smoke")
CPU = size_config("cpu")


def test_plan_shares_runs_and_gives_every_method_the_same_budget():
    experiment = Experiment.load(CPU, "cpu")
    runs = {branch.name: branch for branch in branches(experiment)}
    assert set(methods(experiment).values()) - {"cola-adaptive"} <= set(runs)
    assert list(runs) == [
        "pretrain",
        "two-stage",
        "warmup-0",
        "warmup-1of4",
        "warmup-1of2",
        "adaptive-warmup",
    ]
    for name, branch in runs.items():
        if name not in ("pretrain", "adaptive-warmup"):
            assert branch.parent == "pretrain"
            assert sum(branch.steps.values()) == experiment.budget, name
    assert runs["warmup-0"].stages == ("pretrain", "joint")
    assert runs["two-stage"].stages == ("pretrain", "lam_recon", "wm_finetune")
    adaptive = adaptive_joint_branch(experiment, warmup_used=100)
    assert adaptive.steps["joint"] == experiment.budget - 100 and adaptive.parent == "adaptive-warmup"


def test_gradient_ablations_are_cola_with_one_joint_switch_and_only_when_enabled(tmp_path):
    experiment = Experiment.load(CPU, "cpu")
    assert not experiment.gradient_ablations  # the first call keeps its time budget
    assert not set(GRADIENT_ABLATIONS) & {branch.name for branch in branches(experiment)}
    experiment.gradient_ablations = True
    runs = {branch.name: branch for branch in branches(experiment)}
    cola = runs["warmup-1of4"]
    expected = {
        "joint-frozen-lam": "freeze_lam",
        "joint-frozen-wm": "freeze_wm",
        "joint-stop-gradient": "stop_gradient",
    }
    for name, switch in expected.items():
        branch = runs[name]
        assert (branch.parent, branch.stages, branch.steps) == (cola.parent, cola.stages, cola.steps), name
        joint = run_config(experiment, branch, 0, tmp_path).joint
        others = {"freeze_lam", "freeze_wm", "stop_gradient"} - {switch}
        assert getattr(joint, switch) and not any(getattr(joint, other) for other in others), name
        assert not run_config(experiment, branch, 0, tmp_path).warmup.freeze_lam
    assert list(gradient_ablation_rows(experiment).values()) == ["warmup-1of4", *expected]


def test_the_direction_carrying_the_gain_is_the_one_whose_cut_leaves_cola_ahead():
    holds, tie = "holds (3/3 seeds ahead)", "inconclusive (tie: 3/3 seeds within 0.1)"
    behind = "does not hold (0/3 ahead: 3 behind, 0 tied)"
    assert carrier(holds, tie) == "world model -> LAM"
    assert carrier(tie, holds) == "LAM -> world model"
    assert carrier(holds, holds) == "both directions"
    assert carrier(behind, behind).startswith("neither")
    assert carrier(tie, behind) == "inconclusive"
    assert carrier("untestable (metric unavailable)", holds) == "untestable"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("warmup_fractions = [0.125, 0.25]", "must hold 0.0"),
        ("cola_warmup_fraction = 0.3", "must be one of warmup_fractions"),
        ("budget = 1", "budget must be >= 2"),
        ("bogus = 1", "unknown config key 'experiment.bogus'"),
        ("budgte = 8", "did you mean 'budget'"),
    ],
)
def test_bad_experiment_config_is_rejected(tmp_path, change, message):
    text = SMOKE.read_text()
    key = change.split(" = ")[0]
    lines = [line for line in text.splitlines() if not line.startswith(f"{key} =")]
    lines.insert(lines.index("[experiment]") + 1, change)
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        Experiment.load(path, "smoke")


def test_verdict_is_paired_by_seed_and_counts_ties():
    three = verdict({0: 2.0, 1: 3.0, 2: 1.5}, {0: 1.0, 1: 2.0, 2: 1.3}, higher=True, threshold=0.1)
    assert three["verdict"] == "holds (3/3 seeds ahead)"
    assert (three["ahead"], three["tied"], three["behind"]) == (3, 0, 0)
    assert three["mean_difference"] == pytest.approx(2.2 / 3) and three["std_difference"] > 0
    mixed = verdict({0: 2.0, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.05, 2: 1.0}, higher=True, threshold=0.1)
    assert mixed["verdict"] == "inconclusive (mixed: 1 ahead, 2 tied, 0 behind)"
    behind = verdict({0: 1.0, 1: 1.0, 2: 0.5}, {0: 1.0, 1: 1.5, 2: 1.0}, higher=True, threshold=0.1)
    assert behind["verdict"] == "does not hold (0/3 ahead: 2 behind, 1 tied)"
    # Lower is better: the difference is oriented so that > 0 means CoLA is better.
    lower = verdict({0: 1.0}, {0: 2.0}, higher=False, threshold=0.1)
    assert lower["verdict"] == "holds (1/1 seeds ahead; one seed only)" and lower["mean_difference"] == 1.0
    assert verdict({0: None}, {0: 1.0}, higher=True, threshold=0.1)["verdict"].startswith("untestable")


def test_verdict_calls_differences_within_the_threshold_a_tie():
    # The cpu seed-0 run's SSIM: 0.0558 vs 0.0556 used to read "holds" by the sign of the difference.
    ssim = verdict({0: 0.0558}, {0: 0.0556}, higher=True, threshold=tie_threshold("inferred/ssim"))
    assert ssim["verdict"] == "inconclusive (tie: 1/1 seeds within 0.005; one seed only)"
    assert ssim["tied"] == 1 and ssim["std_difference"] is None
    at_floor = verdict({0: 0.0, 1: 0.0}, {0: 0.0, 1: 0.0}, higher=True, threshold=0.25, floor=0.0)
    assert at_floor["verdict"] == "untestable at this scale (both 0 in 2/2 seeds)"
    one_pair = verdict({0: 0.25, 1: 0.5}, {0: 0.0, 1: 0.5}, higher=True, threshold=0.25, floor=0.0)
    assert one_pair["verdict"].startswith("inconclusive (tie")  # one pair of four flipping is noise


def test_tie_thresholds_are_defined_for_every_claim():
    results = [{"counts": {"planning_pairs": 4}}, {"counts": {"planning_pairs": 0}}]
    assert tie_threshold("planning/success", results) == 0.25
    assert tie_threshold(FINAL_BLOCK_ERROR, results) == 8.0  # a pose error, not a pair count
    assert tie_threshold("inferred/psnr") == 0.1 and tie_threshold("codebook/utilization") == 0.02
    for _, metric, _, _ in CLAIMS:
        assert tie_threshold(metric, results) > 0, metric
    with pytest.raises(ValueError, match="no tie threshold for probe/r2"):
        tie_threshold("probe/r2")


def test_jobs_wait_on_their_parents_and_pretraining_comes_first():
    experiment = Experiment.load(CPU, "cpu")
    evaluated = ["two-stage", "warmup-0", "cola-adaptive"]
    planned = ["two-stage", "cola-adaptive"]
    jobs = {job.name: job for job in plan_jobs(experiment, evaluated, planned)}
    names = list(jobs)
    assert names[:4] == [f"train seed{s}/pretrain" for s in (0, 1, 2)] + ["shared evaluation"]
    assert jobs["train seed1/two-stage"].needs == ("train seed1/pretrain",)
    assert jobs["train seed2/cola-adaptive"].needs == ("train seed2/adaptive-warmup",)
    # Evaluating needs only the run; planning also needs the shared readout and reference.
    assert jobs["evaluate seed0/cola-adaptive"].needs == ("train seed0/cola-adaptive",)
    assert jobs["plan seed0/cola-adaptive"].needs == ("train seed0/cola-adaptive", "shared evaluation")
    for job in jobs.values():
        assert all(names.index(need) < names.index(job.name) for need in job.needs), job.name
    assert len(jobs) == 3 * (len(branches(experiment)) + 1 + len(evaluated) + len(planned)) + 1
    assert "shared evaluation" not in {job.name for job in plan_jobs(experiment, evaluated)}


def test_planning_settings_may_change_between_calls_but_the_training_may_not(tmp_path):
    """Planning lives in files of its own that record their settings: a later call may add or change it (it
    then redoes only the planning); any other change to a folder's experiment is refused."""
    from cola_eval.reproduction.shared import PLANNING_FILE, planned_under_current_settings, planning_settings

    experiment = Experiment.load(CPU, "cpu")
    driver = Driver(experiment, tmp_path, None)
    driver.collect_data = lambda: None  # no PushT needed to check the record
    driver.prepare()
    assert not driver.planning_runs()
    experiment.planning_runs = "methods"
    experiment.eval.planning_pairs = 5
    experiment.eval.planning_config = {**experiment.eval.planning_config, "horizon": 3}
    driver.prepare()  # accepted: only planning changed
    assert {job.run for job in driver.jobs() if job.kind == "plan"} == set(methods(experiment).values())
    plan = next(job for job in driver.jobs() if job.kind == "plan")
    target = driver.run_dir(plan.seed, plan.run) / PLANNING_FILE
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"settings": planning_settings(experiment)}))
    assert driver.job_done(plan) and planned_under_current_settings(target, experiment)
    experiment.eval.planning_pairs = 6
    assert not driver.job_done(plan)  # planned under other settings: redone
    experiment.run["data"]["frame_skip"] = 3
    with pytest.raises(ValueError, match="another configuration"):
        driver.prepare()


def test_frames_stored_as_images_are_a_data_setting_that_old_folders_match(tmp_path):
    pytest.importorskip("gym_pusht")  # collects PushT
    experiment = Experiment.load(CPU, "cpu")
    experiment.data.episodes, experiment.data.episode_length = 2, 12
    experiment.data.use_videos = False
    driver = Driver(experiment, tmp_path / "png", None)
    driver.prepare()
    info = json.loads((driver.data_path / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "image" and info["total_videos"] == 0
    assert not (driver.data_path / "videos").exists() and len(driver.episodes()) == 2

    # A folder recorded before data.use_videos existed holds videos: the default still matches it.
    experiment = Experiment.load(CPU, "cpu")
    driver = Driver(experiment, tmp_path / "old", None)
    driver.collect_data = lambda: None
    driver.prepare()
    record_path = tmp_path / "old" / "experiment.json"
    record = json.loads(record_path.read_text())
    del record["config"]["data"]["use_videos"]
    record_path.write_text(json.dumps(record))
    driver.prepare()
    experiment.data.use_videos = False
    with pytest.raises(ValueError, match="another configuration"):
        driver.prepare()


def test_no_videos_flag_collects_png_frames_and_records_it(tmp_path, monkeypatch):
    pytest.importorskip("gym_pusht")  # collects PushT
    from cola_eval.reproduction.cli import main

    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path / "no-metric-weights"))
    out = tmp_path / "smoke"
    assert main(["--size", "smoke", "--out", str(out), "--no-videos", "--estimate-only"]) == 0
    assert json.loads((out / "experiment.json").read_text())["config"]["data"]["use_videos"] is False
    info = json.loads((out / "data" / "pusht" / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "image"
    assert main(["--size", "smoke", "--out", str(out), "--estimate-only"]) == 2  # the folder's data differ


def _chain() -> list[Job]:
    return [
        Job("train", 0, "pretrain"),
        Job("train", 0, "a", ("train seed0/pretrain",)),
        Job("train", 0, "b", ("train seed0/pretrain",)),
        Job("evaluate", 0, "a", ("train seed0/a",)),
    ]


def test_makespan_schedules_ready_jobs_on_free_workers():
    seconds = {
        "train seed0/pretrain": 10.0,
        "train seed0/a": 5.0,
        "train seed0/b": 7.0,
        "evaluate seed0/a": 1.0,
    }
    assert makespan(_chain(), seconds, workers=1) == 23.0
    assert makespan(_chain(), seconds, workers=2) == 17.0  # a then its evaluation beside b
    del seconds["train seed0/pretrain"]  # done already
    assert makespan(_chain(), seconds, workers=2) == 7.0


class _RecordingDriver:
    """Runs nothing; remembers the jobs."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run_job(self, job: Job) -> None:
        self.ran.append(job.name)


def test_run_jobs_runs_needs_first_and_skips_done_jobs():
    driver = _RecordingDriver()
    done = {"train seed0/pretrain"}
    lines: list[str] = []
    complete = run_jobs(
        _chain(), lambda job: job.name in done, InlineWorkers(driver), lambda: False, lines.append
    )
    assert complete and driver.ran == ["train seed0/a", "train seed0/b", "evaluate seed0/a"]
    assert lines[0] == "1 of 4 jobs already done; 3 to run"
    assert lines[1] == "start train seed0/a" and lines[2].startswith("end train seed0/a in ")


def test_run_jobs_stops_starting_jobs_at_the_chunk_limit():
    driver = _RecordingDriver()
    calls = iter([False, True])
    complete = run_jobs(_chain(), lambda job: False, InlineWorkers(driver), lambda: next(calls, True), print)
    assert not complete and driver.ran == ["train seed0/pretrain"]


def test_a_failing_worker_job_stops_the_run_with_its_traceback(tmp_path):
    # A real worker process and driver, with no collected data: training the pretrain run must fail.
    experiment = Experiment.load(SMOKE, "smoke")
    workers = ProcessWorkers(1, 1, partial(Driver, experiment, tmp_path, None))
    jobs = plan_jobs(experiment, [])[:1]
    with pytest.raises(JobFailed, match=r"(?s)train seed0/pretrain failed after .*Traceback \(most recent"):
        run_jobs(jobs, lambda job: False, workers, lambda: False, print)
    assert workers.processes and all(not process.is_alive() for process in workers.processes)


def test_sigterm_ends_a_call_through_its_cleanup_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as stopped, sigterm_as_exit():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; the sleep is never finished
        finally:
            cleaned.append(True)  # where run_jobs stops its busy workers
    assert stopped.value.code == 128 + signal.SIGTERM and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


_SCHEDULER_KILLED_MID_JOB = """
import os, sys, time
from cola_eval.reproduction.jobs import Job, ProcessWorkers


class SleepingDriver:
    def __init__(self, name):
        pass

    def run_job(self, job):
        open(os.path.join(sys.argv[1], f"started-{job.seed}"), "w").close()
        time.sleep(600)


if __name__ == "__main__":
    workers = ProcessWorkers(2, 1, SleepingDriver)
    for index in range(2):
        workers.submit(index, Job("train", index, "pretrain"))
    print(*(process.pid for process in workers.processes), flush=True)
    time.sleep(600)
"""


def _process_ended(pid: int) -> bool:
    # An orphan is re-parented to init, which may reap it late: a zombie has ended too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_busy_workers_end_when_their_scheduler_is_killed(tmp_path):
    script = tmp_path / "scheduler.py"
    script.write_text(_SCHEDULER_KILLED_MID_JOB)
    scheduler = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    pids: list[int] = []
    try:
        pids += [int(pid) for pid in scheduler.stdout.readline().split()]
        started = [tmp_path / f"started-{index}" for index in range(2)]
        deadline = time.monotonic() + 120
        while not all(marker.exists() for marker in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(marker.exists() for marker in started), "the workers never started their jobs"
        scheduler.kill()  # no cleanup runs: SIGKILL
        scheduler.wait()
        deadline = time.monotonic() + 30
        while not all(map(_process_ended, pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(map(_process_ended, pids)), "a worker outlived its killed scheduler"
    finally:
        scheduler.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_threads_per_worker_never_oversubscribes_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_worker(2, None, cores=2) == 1 and threads_per_worker(1, None, cores=2) == 2
    assert threads_per_worker(3, None, cores=16) == 5 and threads_per_worker(2, 4, cores=8) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_per_worker(1, None, cores=2) == 1
    with pytest.raises(ValueError, match="--workers must be in"):
        threads_per_worker(3, None, cores=2)
    with pytest.raises(ValueError, match="must be in \\[1, 2\\] \\(cores\\)"):
        threads_per_worker(2, 2, cores=2)


def _launch(out: Path, *extra: str) -> subprocess.Popen:
    # An empty metric-weights cache: this test is about scheduling and resuming; the smoke FVD/LPIPS
    # must come out as unavailable, not as numbers from weights a developer happened to fetch.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLA_WEIGHTS_DIR": str(out.parent / "no-metric-weights")}
    return subprocess.Popen(
        [sys.executable, "-m", "cola_eval.reproduction", "--size", "smoke", "--out", str(out), *extra],
        cwd=out.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _warmup_losses(run_dir: Path) -> list[float]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [record["loss"] for record in records if record["stage"] == "warmup"]


def test_smoke_run_is_killed_then_resumes_to_complete_results(tmp_path):
    pytest.importorskip("gym_pusht")  # the experiment collects PushT
    out = tmp_path / "smoke"
    chunk = _launch(out, "--max-minutes", "0.0001", "--workers", "2")
    log = chunk.communicate(timeout=120)[0]
    assert chunk.returncode == 75 and "run the same command to continue" in log, log

    first = _launch(out, "--workers", "2")
    # The two workers finish jobs in either order: wait for both of these before the kill.
    markers = [out / "runs" / "seed0" / "two-stage" / "DONE", out / "shared" / "planning_reference.json"]
    deadline = time.monotonic() + 120
    while not all(m.exists() for m in markers) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    finished = all(m.exists() for m in markers)
    assert finished, first.communicate()[0] if first.poll() is not None else "no run finished in 120 s"
    with contextlib.suppress(ProcessLookupError):  # a run that already ended
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its workers, mid-way through other jobs
    first.communicate()

    # The resumed call also adds the gradient-path ablations, as a second command on a finished folder would.
    second = _launch(out, "--workers", "2", "--gradient-ablations")
    log = second.communicate(timeout=180)[0]
    assert second.returncode == 0, log
    assert "1 worker(s)" not in log and "2 worker(s) x 1 torch thread(s)" in log
    assert "(worker 2)" in log  # the two workers both took jobs
    for finished in ("train seed0/pretrain", "train seed0/two-stage", "shared evaluation"):
        assert f"start {finished}" not in log, finished  # finished units are skipped
    assert "end evaluate seed0/cola-adaptive in " in log
    assert "estimated wall time left" in log and "per-step timings measured" in log
    for name in ("results.md", "results.json", "utilization.png", "experiment.json", ".gitignore"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {
        "two-stage",
        "joint, no warm-up",
        "CoLA (warm-up 1/8)",
        "CoLA, adaptive warm-up",
    }
    assert results["findings"][0]["claim"].startswith("without warm-up")
    assert results["stats"]["two-stage"]["inferred/fvd"]["mean"] is None  # no I3D weights: never made up
    ablations = tuple(GRADIENT_ABLATIONS)
    warmup_runs = ("warmup-0", "warmup-1of8", "warmup-1of4", "warmup-1of2")
    for run in ("two-stage", *warmup_runs, "cola-adaptive", *ablations):
        run_dir = out / "runs" / "seed0" / run
        config = json.loads((run_dir / "config.json").read_text())
        parent = "adaptive-warmup" if run == "cola-adaptive" else "pretrain"
        assert config["seed"] == 0 and "pretrain" not in config["stages"]  # branched, not retrained
        assert config["init_from"] == str((out / "runs" / "seed0" / parent).resolve())
        steps = [
            (r["stage"], r["step"])
            for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        ]
        assert len(steps) == len(set(steps)), f"{run} logged a step twice after resuming"
        planned = run_dir / "planning.json"
        assert planned.exists() == (run not in ("warmup-1of4", "warmup-1of2", *ablations)), run
        if planned.exists():
            assert "planning/world_model/success" in json.loads(planned.read_text())["metrics"]
            assert results["stats"][run]["planning/world_model/success"]["n"] == 1
            # the graded planning measure, from the planning record itself
            block_error = json.loads(planned.read_text())["planning"]["mean_final_block_error_px"]
            assert results["stats"][run][FINAL_BLOCK_ERROR]["values"] == [block_error]
    # The ablations repeat CoLA's warm-up exactly: they differ from CoLA only in the joint stage.
    warmups = {run: _warmup_losses(out / "runs" / "seed0" / run) for run in ("warmup-1of8", *ablations)}
    assert warmups["warmup-1of8"] and all(losses == warmups["warmup-1of8"] for losses in warmups.values())
    joint = json.loads((out / "runs" / "seed0" / "joint-stop-gradient" / "config.json").read_text())["joint"]
    assert joint["stop_gradient"] and not joint["freeze_lam"]
    assert set(results["gradient_ablations"]["rows"]) == {
        "CoLA (joint, both directions)",
        "LAM frozen in joint",
        "world model frozen in joint",
        "gradient into the LAM stopped",
    }
    assert set(results["gradient_ablations"]["carries_the_gain"]) >= {"inferred/psnr", "codebook/utilization"}
    table = (out / "results.md").read_text()
    assert "paper claim holds?" in table and "unavailable" in table
    assert "## Gradient-path ablations" in table and "Reading rule:" in table and "carries the gain" in table
    assert "moving-pixel delta-PSNR (dB)" in table and "agent error, shuffled (px)" in table
    assert "final block error (px + 57 px/rad)" in table and "plans end nearer the goal" in table
    stats = results["stats"]["warmup-1of8"]
    # PushT clips: every controllability score is measured.
    for key in (
        "moving_delta_psnr",
        "inferred/agent_error",
        "shuffled/agent_error",
        "inferred/action_recovery",
    ):
        assert stats[key]["mean"] is not None, key
    evaluation = json.loads((out / "runs" / "seed0" / "two-stage" / "evaluation.json").read_text())
    assert evaluation["counts"]["rollout_agent_frames"] == evaluation["counts"]["rollout_frames"] > 0
    assert (
        "copy/agent_error" in evaluation["metrics"] and evaluation["metrics"]["copy/action_recovery"] is None
    )
    assert "not a world-model rollout" in evaluation["unavailable"]["copy/action_recovery"]
    _check_merging_per_seed_parts(out, tmp_path)


def _check_merging_per_seed_parts(out: Path, tmp_path: Path) -> None:
    """Two folders that each ran one seed (as one GPU call per seed does) merge into one summary over both,
    without their weights; parts of another experiment, or repeating a seed, are refused."""
    import shutil

    from cola_eval.reproduction.merge import main as merge_main

    second = tmp_path / "seed1-part"
    shutil.copytree(out, second, ignore=shutil.ignore_patterns("data", "models", "checkpoints"))
    (second / "runs" / "seed0").rename(second / "runs" / "seed1")
    record = json.loads((second / "experiment.json").read_text())
    record["config"]["seeds"] = [1]
    (second / "experiment.json").write_text(json.dumps(record))

    merged = tmp_path / "merged"
    assert merge_main(["--size", "smoke", "--out", str(merged), str(out), str(second)]) == 0
    assert not list(merged.rglob("*.safetensors")) and not (merged / "data").exists()
    assert json.loads((merged / "experiment.json").read_text())["config"]["seeds"] == [0, 1]
    results = json.loads((merged / "results.json").read_text())
    assert results["stats"]["two-stage"]["inferred/psnr"]["n"] == 2
    assert "## Gradient-path ablations" in (merged / "results.md").read_text()
    assert merge_main(["--size", "smoke", "--out", str(tmp_path / "twice"), str(out), str(out)]) == 2
    assert merge_main(["--size", "smoke", "--no-videos", "--out", str(tmp_path / "other"), str(out)]) == 2
    assert merge_main(["--size", "smoke", "--out", str(merged), str(out)]) == 2  # not empty
