"""``cola-train quickstart``: collect a small PushT dataset, co-train a tiny CoLA world model on the CPU."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from cola_train.config import RunConfig, load_config
from cola_train.pipeline import train
from cola_train.run_lock import RunLock

logger = logging.getLogger("cola_train")

QUICKSTART_EPISODES = 48
QUICKSTART_EPISODE_LENGTH = 120


def quickstart(
    out: str | Path = "cola-quickstart",
    overrides: list[str] | None = None,
    episodes: int = QUICKSTART_EPISODES,
) -> Path:
    """Collect PushT into ``out/data`` (once), then pretrain, warm up and co-train into ``out/run``.

    Rerunning continues an interrupted run (or only re-saves the models of a finished one). Returns the run
    directory.
    """
    out = Path(out).resolve()
    data_path = out / "data" / "pusht"
    config = load_config(preset="quickstart", overrides=[f'data.path="{data_path}"', *(overrides or [])])
    # The lock on `out` keeps a second quickstart from collecting into the same folder; train() locks out/run.
    with RunLock(out):
        _collect_once(data_path, config, episodes)
        return train(config, out / "run", resume=True)


def _collect_once(data_path: Path, config: RunConfig, episodes: int) -> None:
    if not (data_path / "meta" / "info.json").exists():
        from cola_train.data import collect_pusht

        if data_path.exists():
            # A collection killed before its rename leaves an empty folder; collect_pusht wants an empty one.
            shutil.rmtree(data_path)
        logger.info("collecting %d PushT episodes into %s", episodes, data_path)
        collect_pusht(
            data_path,
            episodes,
            seed=config.seed,
            episode_length=QUICKSTART_EPISODE_LENGTH,
            frame_size=config.data.frame_size,
        )
