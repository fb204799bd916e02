"""cola_train.threads: the tuner driven by made-up step times (quiet, loaded, load gone), fixed counts, and
the ``train.threads`` config field and ``--threads`` flag."""

import re
from pathlib import Path

import cola_train.quickstart as quickstart_module
import pytest
import torch
from cola_train.cli import build_parser, main
from cola_train.config import config_differences, load_config
from cola_train.threads import FixedThreads, ThreadTuner, thread_candidates, thread_policy

# Seconds per step on a 2-core machine as the issue measured it (steps/s 2.85 / 1.88 quiet, 0.68 / 1.69 with
# one busy neighbour).
STEP_SECONDS = {(False, 2): 1 / 2.85, (False, 1): 1 / 1.88, (True, 2): 1 / 0.68, (True, 1): 1 / 1.69}


class FakeMachine:
    """A clock that advances by one step at the current thread count and load each time it is read after a
    step, and a thread setter that records the count."""

    def __init__(self, threads: int = 2) -> None:
        self.threads, self.loaded, self.now = threads, False, 0.0
        self.history: list[int] = []
        self.counts_set: list[int] = []

    def set_threads(self, count: int) -> None:
        self.threads = count
        self.counts_set.append(count)

    def clock(self) -> float:
        return self.now

    def step(self, tuner: ThreadTuner) -> None:
        self.now += STEP_SECONDS[(self.loaded, self.threads)]
        tuner.step_done()
        self.history.append(tuner.current)


def _tuner(machine: FakeMachine) -> ThreadTuner:
    tuner = ThreadTuner([2, 1], clock=machine.clock, set_threads=machine.set_threads)
    tuner.start()
    return tuner


def test_a_quiet_machine_stays_at_all_cores() -> None:
    machine = FakeMachine()
    tuner = _tuner(machine)
    for _ in range(1000):
        machine.step(tuner)
    assert set(machine.history) == {2}
    assert 1 in machine.counts_set, "it kept probing one thread"
    assert machine.threads == 2


def test_a_loaded_machine_moves_to_one_thread_within_the_first_probe() -> None:
    machine = FakeMachine()
    machine.loaded = True
    tuner = _tuner(machine)
    for _ in range(30):
        machine.step(tuner)
    assert tuner.current == 1 and machine.threads == 1


def test_the_load_appearing_midway_is_found_at_once_and_its_end_at_a_later_probe() -> None:
    machine = FakeMachine()
    tuner = _tuner(machine)
    for _ in range(300):
        machine.step(tuner)
    assert tuner.current == 2
    machine.loaded = True
    for _ in range(20):
        machine.step(tuner)
    assert tuner.current == 1, "a 4x slower step is a drift that probes at once"
    machine.loaded = False
    for _ in range(500):
        machine.step(tuner)
    assert tuner.current == 2 and machine.threads == 2


def test_a_slow_log_step_does_not_decide() -> None:
    machine = FakeMachine()
    tuner = _tuner(machine)
    for index in range(1000):
        if index % 10 == 0:
            machine.now += 5.0  # a checkpoint write inside the step's interval
        machine.step(tuner)
    assert set(machine.history) == {2}


def test_a_new_stage_drops_an_unfinished_probe() -> None:
    machine = FakeMachine()
    tuner = _tuner(machine)
    for _ in range(12):
        machine.step(tuner)
    assert machine.threads == 1, "probing one thread"
    tuner.start()
    assert machine.threads == 2 and tuner.current == 2


def test_a_fixed_count_is_set_kept_and_given_back() -> None:
    counts: list[int] = []
    original = torch.get_num_threads()
    policy = FixedThreads(3, set_threads=counts.append)
    policy.start()
    for _ in range(500):
        policy.step_done()
    policy.restore()
    assert counts == [3, original]


def test_policy_follows_the_config_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    try:
        fixed = thread_policy(1, cpu)
        assert isinstance(fixed, FixedThreads) and torch.get_num_threads() == 1
        fixed.restore()
        assert torch.get_num_threads() == threads
        torch.set_num_threads(2)
        assert isinstance(thread_policy(0, cpu), ThreadTuner)
        assert isinstance(thread_policy(0, torch.device("cuda")), FixedThreads)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert isinstance(thread_policy(0, cpu), FixedThreads), "a count the user asked for stays"
        monkeypatch.delenv("OMP_NUM_THREADS")
        # A caller that set one thread (the loss-trace test) leaves the tuner nothing to try.
        torch.set_num_threads(1)
        assert isinstance(thread_policy(0, cpu), FixedThreads)
    finally:
        torch.set_num_threads(threads)


def test_candidates() -> None:
    assert thread_candidates(2) == [2, 1]
    assert thread_candidates(8) == [8, 7, 1]
    with pytest.raises(ValueError, match="counts >= 1"):
        ThreadTuner([2, 0])


def test_threads_flag_reaches_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_config().train.threads == 0
    for command in (["run"], ["two-stage"]):
        assert main([*command, "--threads", "1", "--print-config"]) == 0
        assert '"threads": 1' in capsys.readouterr().out
    seen: dict[str, list[str]] = {}

    def fake_quickstart(out: str, overrides: list[str]) -> Path:
        seen["overrides"] = overrides
        return tmp_path

    monkeypatch.setattr(quickstart_module, "quickstart", fake_quickstart)
    assert main(["quickstart", "--set", "train.threads=4", "--threads", "1"]) == 0
    assert seen["overrides"][-1] == "train.threads=1", "--threads wins over --set"
    assert build_parser().parse_args(["quickstart"]).threads is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--threads", "-1", "--print-config"], r"train\.threads must be in \[0, inf\)"),
        (["run", "--set", "train.threads=1.5", "--print-config"], r"'train\.threads' expects int"),
    ],
)
def test_bad_thread_counts_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_run_resumes_under_another_thread_count() -> None:
    saved = load_config(overrides=["train.threads=0"]).to_dict()
    assert config_differences(saved, load_config(overrides=["train.threads=1"]).to_dict()) == []
