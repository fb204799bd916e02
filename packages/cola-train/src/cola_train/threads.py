"""How many torch threads a CPU run uses: a fixed count, or a tuner that keeps picking the faster one.

With threads = cores, torch's OpenMP threads wait on each other at every parallel region, so one busy
process on the machine (a browser tab) stalls them all: on 2 cores a step ran 4.2x slower, while one thread
lost 10%. No single count is best both quiet and loaded, and the load changes during a run, so by default
:class:`ThreadTuner` times the steps and, every so often, tries the other counts for a few steps. A run
whose count changed is not bit-identical to one that kept it (reductions split differently): a fixed count
(``train.threads = N``, ``--threads N``) gives bit-identical reruns and resumes. Measurements:
docs/decisions.md.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

logger = logging.getLogger("cola_train")


class ThreadPolicy(Protocol):
    """What the training loop calls: ``start`` as a stage begins, ``step_done`` after each step, ``restore``
    when the run ends (the thread count the caller had comes back)."""

    def start(self) -> None: ...

    def step_done(self) -> None: ...

    def restore(self) -> None: ...


@dataclass(frozen=True)
class TunerSettings:
    """When and how long :class:`ThreadTuner` probes.

    ``first_probe``: steps before the first probe, short so that a loaded machine is found fast.
    ``probe_every``: steps between probes while the count is unchanged (it doubles after every probe that
    keeps the count, up to ``max_probe_every``: probing a slower count costs steps). ``probe_steps``: timed
    steps per candidate, after one untimed step (the thread pool resizes). ``margin``: a candidate's median
    step must be this much shorter to be adopted. ``give_up``: a candidate whose first two steps are both
    this many times the current median is dropped early. ``drift``: when the median step moves this far from
    the one measured at the last decision (a process started or ended), probe at once.
    """

    first_probe: int = 10
    probe_every: int = 100
    max_probe_every: int = 400
    probe_steps: int = 5
    margin: float = 0.05
    give_up: float = 1.2
    drift: float = 0.25


class FixedThreads:
    """A fixed count (``None``: leave torch's count alone); the count the caller had comes back on restore."""

    def __init__(self, count: int | None, set_threads: Callable[[int], None] = torch.set_num_threads) -> None:
        self._set = set_threads
        self._original = torch.get_num_threads()
        self.count = count
        if count is not None:
            set_threads(count)

    def start(self) -> None:
        pass

    def step_done(self) -> None:
        pass

    def restore(self) -> None:
        if self.count is not None:
            self._set(self._original)


class ThreadTuner:
    """Runs at one of ``candidates`` (the first to start), probes the others from time to time, keeps the
    fastest by median step time (a slow log or checkpoint step does not decide).

    ``clock`` and ``set_threads`` are injectable so that a test can drive it with made-up step times.
    """

    def __init__(
        self,
        candidates: list[int],
        settings: TunerSettings | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        if not candidates or any(count < 1 for count in candidates):
            raise ValueError(f"thread candidates must be counts >= 1, got {candidates}")
        self.candidates = list(dict.fromkeys(candidates))
        self.settings = settings or TunerSettings()
        self._clock, self._set = clock, set_threads
        self._original = torch.get_num_threads()
        self.current = self.candidates[0]
        self._set(self.current)
        self._interval = self.settings.probe_every
        self._until_probe = self.settings.first_probe
        self._samples: list[float] = []
        self._reference: float | None = None
        self._skip = True
        self._last = clock()
        # While probing: the baseline median, the candidates still to try, each one's median so far.
        self._baseline = 0.0
        self._queue: list[int] = []
        self._probe_samples: list[float] = []
        self._results: dict[int, float] = {}

    def start(self) -> None:
        """A stage begins: its steps cost differently from the last stage's, so measure afresh (and drop an
        unfinished probe)."""
        if self._queue:
            self._queue, self._results, self._probe_samples = [], {}, []
            self._set(self.current)
        self._samples, self._reference, self._skip = [], None, True
        self._last = self._clock()

    def step_done(self) -> None:
        now = self._clock()
        seconds, self._last = now - self._last, now
        if self._skip:
            # The first step at a new count (or of a stage) pays for the thread pool or the stage's setup.
            self._skip = False
        elif self._queue:
            self._probe_step(seconds)
        else:
            self._run_step(seconds)

    def restore(self) -> None:
        self._set(self._original)

    def _run_step(self, seconds: float) -> None:
        window = self.settings.probe_steps
        self._samples = [*self._samples[-(window - 1) :], seconds]
        self._until_probe -= 1
        if len(self._samples) < window:
            return
        median = statistics.median(self._samples)
        if self._reference is None:
            self._reference = median
        drifted = abs(median / self._reference - 1) > self.settings.drift
        if self._until_probe <= 0 or drifted:
            self._begin_probe(median)

    def _begin_probe(self, baseline: float) -> None:
        self._baseline = baseline
        self._queue = [count for count in self.candidates if count != self.current]
        self._results = {}
        self._probe_samples = []
        if self._queue:
            self._switch(self._queue[0])
        else:
            self._until_probe = self._interval

    def _probe_step(self, seconds: float) -> None:
        self._probe_samples.append(seconds)
        slow = min(self._probe_samples) > self._baseline * self.settings.give_up
        hopeless = slow and len(self._probe_samples) >= 2
        if not hopeless and len(self._probe_samples) < self.settings.probe_steps:
            return
        self._results[self._queue.pop(0)] = statistics.median(self._probe_samples)
        self._probe_samples = []
        if self._queue:
            self._switch(self._queue[0])
        else:
            self._decide()

    def _decide(self) -> None:
        best = min(self._results, key=self._results.__getitem__)
        if self._results[best] < self._baseline * (1 - self.settings.margin):
            logger.info(
                "torch threads %d -> %d: median step %.3fs instead of %.3fs",
                self.current,
                best,
                self._results[best],
                self._baseline,
            )
            self.current, self._interval = best, self.settings.probe_every
        else:
            self._interval = min(2 * self._interval, self.settings.max_probe_every)
        self._switch(self.current)
        self._until_probe = self._interval
        self._samples, self._reference = [], None

    def _switch(self, count: int) -> None:
        self._set(count)
        self._skip = True


def thread_candidates(ceiling: int) -> list[int]:
    """The counts worth trying below ``ceiling`` threads: all of them, one fewer (a core left to the
    neighbour), and one."""
    return list(dict.fromkeys([ceiling, *([ceiling - 1] if ceiling > 2 else []), 1]))


def thread_policy(threads: int, device: torch.device) -> ThreadPolicy:
    """The policy for ``train.threads``: N >= 1 a fixed N; 0 the tuner on CPU runs, below the count torch has
    now (its default is the number of cores). ``OMP_NUM_THREADS``, where set, is a count the user asked for:
    then 0 keeps it fixed."""
    if threads >= 1:
        return FixedThreads(threads)
    if device.type != "cpu":
        # On an accelerator the host threads only queue kernels; their count does not matter.
        return FixedThreads(None)
    if os.environ.get("OMP_NUM_THREADS"):
        logger.info(
            "OMP_NUM_THREADS=%s is set: training on %d torch threads, fixed (unset it to let cola-train "
            "adapt the count to the machine's load)",
            os.environ["OMP_NUM_THREADS"],
            torch.get_num_threads(),
        )
        return FixedThreads(None)
    ceiling = torch.get_num_threads()
    if ceiling <= 1:
        return FixedThreads(None)
    return ThreadTuner(thread_candidates(ceiling))
