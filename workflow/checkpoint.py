"""Resumable training: where training stood and every variable it needs, saved atomically.

A checkpoint holds every variable of the model and the optimizer, including the states of the
models' random seed generators (dropout), which Keras's `save_weights` leaves out: without them a
resumed run draws different dropout masks and its weights differ from an uninterrupted run's.
With it, the epoch and batch reached and the per-epoch history so far.

Layout of a checkpoint folder (never a declared output, so Snakemake's clean-up of a failed job
keeps it):
    state.json                  what training reached, and which variables file holds it
    variables-e<E>-b<B>.npz     the variables, in `model.variables + optimizer.variables` order
A save writes the variables file first and then replaces state.json, each atomically, so a kill at
any moment leaves the previous complete checkpoint in force.

On SIGTERM (what Slurm sends before the time limit and on preemption) `PreemptionGuard` lets the
current batch finish, saves, and training stops with `TrainingInterruptedError` (a non-zero exit); the
next attempt (Snakemake's `retries`, or Slurm's requeue) resumes from that batch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import threading
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from workflow.atomic import atomic_path, read_json, write_json

log = logging.getLogger(__name__)
STATE = "state.json"


class TrainingInterruptedError(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; a rerun resumes from it."""


@dataclasses.dataclass
class Progress:
    """Where training stands: `epoch` epochs done, plus `batch` batches of the next one."""

    epoch: int = 0
    batch: int = 0
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    seconds: list[float] = dataclasses.field(default_factory=list)
    attempts: int = 0


def training_variables(model: keras.Model) -> list[Any]:
    """Every variable training changes, in a fixed order: the model's (with seed states), the optimizer's."""
    return list(model.variables) + list(model.optimizer.variables)


class Checkpoint:
    """The checkpoint folder of one training run (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = pathlib.Path(folder)

    def exists(self) -> bool:
        return (self.folder / STATE).is_file()

    def position(self) -> tuple[int, int]:
        """(epochs done, batches of the next) of the saved checkpoint; (0, 0) when there is none."""
        if not self.exists():
            return 0, 0
        state = read_json(self.folder / STATE)
        return state["epoch"], state["batch"]

    def save(self, model: keras.Model, progress: Progress) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        variables = training_variables(model)
        name = f"variables-e{progress.epoch}-b{progress.batch}.npz"
        with atomic_path(self.folder / name) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, *[np.asarray(variable.numpy()) for variable in variables])
        write_json(
            self.folder / STATE,
            {
                **dataclasses.asdict(progress),
                "variables": name,
                "paths": [variable.path for variable in variables],
            },
        )
        for stale in self.folder.glob("variables-*.npz"):
            if stale.name != name:
                stale.unlink(missing_ok=True)
        log.info("checkpoint: epoch %d batch %d saved in %s", progress.epoch, progress.batch, self.folder)

    def restore(self, model: keras.Model) -> Progress:
        """Load the saved variables into `model` (compiled) and return the progress; a fresh Progress if none."""
        if not self.exists():
            return Progress()
        state = read_json(self.folder / STATE)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = training_variables(model)
        paths = [variable.path for variable in variables]
        if paths != state["paths"]:
            raise ValueError(
                f"{self.folder}: the checkpoint does not match this model ({len(state['paths'])} saved variables, "
                f"{len(paths)} now; first difference at {_first_difference(state['paths'], paths)}). "
                "Delete the folder to train from the start."
            )
        with np.load(self.folder / state["variables"]) as saved:
            for index, variable in enumerate(variables):
                variable.assign(saved[f"arr_{index}"])
        progress = Progress(
            epoch=state["epoch"],
            batch=state["batch"],
            history=state["history"],
            seconds=state["seconds"],
            attempts=state["attempts"],
        )
        log.info("resuming from %s: epoch %d, batch %d", self.folder, progress.epoch, progress.batch)
        return progress


def _first_difference(saved: list[str], now: list[str]) -> str:
    for index, (before, after) in enumerate(zip(saved, now, strict=False)):
        if before != after:
            return f"#{index}: {before!r} saved, {after!r} now"
    return f"#{min(len(saved), len(now))}"


class PreemptionGuard:
    """While active, SIGTERM only raises a flag; the training callback saves and stops at the batch end.

    `enabled=False` (non-chief workers) ignores SIGTERM instead: the chief saves and exits, and srun
    then stops the others.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle if self.enabled else signal.SIG_IGN)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM: saving a checkpoint after the current batch, then stopping")
        self.requested.set()


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every_steps` batches, and at once when the guard was signalled (then stops fit).

    Keras calls it before every `steps_per_execution` batches, so both happen at the first such
    call at or after the point (at most steps_per_execution - 1 batches later).
    """

    def __init__(
        self, save: Callable[[int, int], None], guard: PreemptionGuard, every_steps: int, first_batch: int = 0
    ) -> None:
        super().__init__()
        self.save, self.guard, self.every_steps = save, guard, every_steps
        self.first_batch = first_batch  # batches of this epoch done before this fit call (a resume)
        self.previous = first_batch  # batches done at the previous call (Keras calls every steps_per_execution)
        self.epoch = 0
        self.interrupted_at: tuple[int, int] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # At the start of a batch, not the end: any end-of-batch hook makes Keras wait for every
        # step and convert its logs (see EpochSummaries in workflow/train.py); at the start there
        # are no logs. The batches before this one are done, so this saves what a save after them would.
        done = self.first_batch + batch
        if self.guard.requested.is_set():
            self.save(self.epoch, done)
            self.interrupted_at = (self.epoch, done)
            self.model.stop_training = True  # Keras runs this batch, then stops; the resume redoes it
        elif batch and self.every_steps and done // self.every_steps > self.previous // self.every_steps:
            self.save(self.epoch, done)  # the first call at or past each multiple of every_steps
        self.previous = done
