"""The reproduction's units of work as jobs with dependencies, and the scheduler that runs them on N workers.

Jobs: one per trained run of each seed (a branch needs its parent: the seed's pretrain, or the adaptive
warm-up for the adaptive joint run), one per evaluated run of each seed (it needs its run), one shared job
(the planning readout and reference scores) and one per planning run of each seed (it needs its run and the
shared job). A job is done when its marker exists, so a
killed run restarts by skipping them. With one worker the jobs run in this process; with more, each worker is
a spawned process with its own share of the cores, the first failure stops them all, and a worker ends when
the process that spawned it ends, however it ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any


@dataclass(frozen=True)
class Job:
    """One unit of the experiment: ``kind`` is "train", "evaluate", "plan" or "shared"."""

    kind: str
    seed: int | None = None
    run: str | None = None
    needs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "shared evaluation" if self.kind == "shared" else f"{self.kind} seed{self.seed}/{self.run}"


class JobFailed(RuntimeError):
    """A job raised (its traceback is the message) or its worker died; the run stops."""


def train_job_name(seed: int, run: str) -> str:
    return Job("train", seed, run).name


def plan_jobs(experiment: Any, evaluated: Sequence[str], planned: Sequence[str] = ()) -> list[Job]:
    """Every job in priority order: pretraining first, then the shared job (only when some run plans), the
    seeds' branch runs (the adaptive warm-up first, since the adaptive joint run waits on it), then the
    evaluations and the planning of the ``planned`` runs."""
    from cola_eval.reproduction.plan import branches

    runs = branches(experiment)
    parents = {b.name: b.parent for b in runs} | {"cola-adaptive": "adaptive-warmup"}
    order = ["adaptive-warmup", *(b.name for b in runs if b.name not in ("pretrain", "adaptive-warmup"))]
    order.append("cola-adaptive")
    jobs = [Job("train", seed, "pretrain") for seed in experiment.seeds]
    shared_needs: tuple[str, ...] = ()
    if planned:
        jobs.append(Job("shared"))
        shared_needs = (Job("shared").name,)
    for seed in experiment.seeds:
        jobs += [Job("train", seed, name, (train_job_name(seed, parents[name]),)) for name in order]
    for seed in experiment.seeds:
        jobs += [Job("evaluate", seed, run, (train_job_name(seed, run),)) for run in evaluated]
    for seed in experiment.seeds:
        jobs += [Job("plan", seed, run, (train_job_name(seed, run), *shared_needs)) for run in planned]
    return jobs


def _next_ready(pending: list[Job], finished: set[str]) -> Job | None:
    return next((job for job in pending if all(need in finished for need in job.needs)), None)


def makespan(jobs: Sequence[Job], seconds: dict[str, float], workers: int) -> float:
    """Wall seconds for ``jobs`` (those in ``seconds``; others are done) on ``workers``, scheduled as
    :func:`run_jobs` does: whenever a worker is free it takes the first job whose needs are finished."""
    pending = [job for job in jobs if job.name in seconds]
    finished = {job.name for job in jobs if job.name not in seconds}
    running: list[tuple[float, str]] = []
    now = 0.0
    while pending or running:
        while len(running) < workers and (job := _next_ready(pending, finished)) is not None:
            pending.remove(job)
            running.append((now + seconds[job.name], job.name))
        if not running:
            raise ValueError(f"jobs wait on needs that never finish: {[job.name for job in pending]}")
        running.sort()
        now, name = running.pop(0)
        finished.add(name)
    return now


# ----------------------------------------------------------------------------------------------------
# Workers


class InlineWorkers:
    """One worker: the jobs run in this process, one at a time."""

    count = 1

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.outcome: tuple[int, str | None] | None = None

    def submit(self, index: int, job: Job) -> None:
        try:
            self.driver.run_job(job)
            self.outcome = (index, None)
        except Exception:
            self.outcome = (index, traceback.format_exc())

    def next_outcome(self, busy: Sequence[int]) -> tuple[int, str | None]:
        outcome, self.outcome = self.outcome, None
        assert outcome is not None, "next_outcome without a submitted job"
        return outcome

    def close(self, busy: Sequence[int] = ()) -> None:
        pass


# A worker's exit status when its scheduler process ended without stopping it (SIGKILL, a crash).
PARENT_GONE_EXIT = 3


def exit_when_parent_ends() -> None:
    """In a spawned process: end this process as soon as the process that spawned it ends.

    A scheduler killed without its cleanup (SIGKILL, an out-of-memory kill, a crash) would otherwise leave
    each busy worker training its job to the end into the run folder, beside whatever call starts next; the
    job's run resumes from its last checkpoint, as after ``ProcessWorkers.close``'s terminate.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the spawn pipe closes: the parent has ended
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="exit when the scheduler ends", daemon=True).start()


def _worker_main(
    connection: Connection, number: int, threads: int, make_driver: Callable[[str], Any]
) -> None:
    exit_when_parent_ends()
    import torch

    torch.set_num_threads(threads)
    driver = make_driver(f"worker {number}")
    while True:
        try:
            job = connection.recv()
        except EOFError:  # the scheduler is gone
            return
        if job is None:
            return
        try:
            driver.run_job(job)
        except BaseException:
            connection.send(traceback.format_exc())
            return
        connection.send(None)


class ProcessWorkers:
    """``count`` spawned processes, each with ``threads`` torch threads and its own driver, made by
    ``make_driver(name)`` (data loaded once per process); each takes one job at a time over its pipe and
    answers None or the job's traceback."""

    def __init__(self, count: int, threads: int, make_driver: Callable[[str], Any]) -> None:
        self.count = count
        self.threads = threads
        self.make_driver = make_driver
        self.processes: list[Any] = []
        self.connections: list[Connection] = []

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        for index in range(self.count):
            ours, theirs = context.Pipe()
            arguments = (theirs, index + 1, self.threads, self.make_driver)
            process = context.Process(target=_worker_main, args=arguments, daemon=True)
            process.start()
            theirs.close()
            self.processes.append(process)
            self.connections.append(ours)

    def submit(self, index: int, job: Job) -> None:
        if not self.processes:  # started at the first job: a call with nothing to run spawns nothing
            self._start()
        self.connections[index].send(job)

    def next_outcome(self, busy: Sequence[int]) -> tuple[int, str | None]:
        by_connection = {self.connections[i]: i for i in busy}
        by_sentinel = {self.processes[i].sentinel: i for i in busy}
        ready = wait([*by_connection, *by_sentinel])
        answered = [item for item in ready if isinstance(item, Connection)]
        index = by_connection[answered[0]] if answered else by_sentinel[ready[0]]
        connection = self.connections[index]
        try:
            if answered or connection.poll():  # a last answer sent just before the worker ended
                return index, connection.recv()
        except EOFError:
            pass
        process = self.processes[index]
        process.join(timeout=5)
        return index, f"worker {index + 1} died (exit code {process.exitcode}) without an answer"

    def close(self, busy: Sequence[int] = ()) -> None:
        """Let idle workers exit and stop the ``busy`` ones now (their runs resume from their checkpoints)."""
        for index, (process, connection) in enumerate(zip(self.processes, self.connections, strict=True)):
            if index in busy:
                process.terminate()
            else:
                with contextlib.suppress(OSError):  # a worker that already ended
                    connection.send(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


def run_jobs(
    jobs: Sequence[Job],
    done: Callable[[Job], bool],
    workers: Any,
    time_up: Callable[[], bool],
    say: Callable[[str], None],
) -> bool:
    """Run every job not ``done`` on ``workers``, needs first; True when all are done.

    Once ``time_up()``, no job starts and the running ones finish (a chunk ends cleanly: False). A failed job
    stops every worker and raises :class:`JobFailed` with its traceback.
    """
    pending = [job for job in jobs if not done(job)]
    finished = {job.name for job in jobs if done(job)}
    total, count = len(pending), 0
    if finished and pending:
        say(f"{len(finished)} of {len(jobs)} jobs already done; {total} to run")
    running: dict[int, tuple[Job, float]] = {}
    stopping = False
    try:
        while pending or running:
            if not stopping and time_up():
                stopping = True
                if running:
                    say(f"chunk limit reached: waiting for {len(running)} running job(s) to finish")
            while not stopping and len(running) < workers.count:
                job = _next_ready(pending, finished)
                if job is None:
                    break
                index = next(i for i in range(workers.count) if i not in running)
                pending.remove(job)
                running[index] = (job, time.perf_counter())
                say(f"start {job.name}" + (f" (worker {index + 1})" if workers.count > 1 else ""))
                workers.submit(index, job)
            if not running:
                if stopping:
                    return False
                raise JobFailed(f"jobs wait on needs that never finish: {[job.name for job in pending]}")
            index, failure = workers.next_outcome(list(running))
            job, started = running.pop(index)
            seconds = time.perf_counter() - started
            if failure is not None:
                raise JobFailed(f"{job.name} failed after {seconds:.0f} s:\n{failure}")
            finished.add(job.name)
            count += 1
            say(f"end {job.name} in {seconds:.0f} s ({count}/{total} jobs)")
        return True
    finally:
        workers.close(list(running))
