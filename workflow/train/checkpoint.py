"""Resumable training: where training stood and every variable it needs, saved atomically.

A checkpoint holds every variable of the model and the optimizer, including the states of the
models' random seed generators (dropout), which Keras's `save_weights` leaves out: without them a
resumed run draws different dropout masks and its weights differ from an uninterrupted run's.
With it, the epoch and batch reached and the per-epoch history so far.

Layout of a checkpoint folder (never a declared output, so Snakemake's clean-up of a failed job
keeps it):
    state.json                  what training reached, which variables file holds it, and its sha256
    state.previous.json         the same for the checkpoint before (kept until the next save)
    variables-e<E>-b<B>.npz     the variables, in `model.variables + optimizer.variables` order
A save writes the variables file first and then replaces state.json, each atomically, so a kill at
any moment leaves the previous complete checkpoint in force. A checkpoint whose state.json or
variables file does not read back as saved (a flipped byte, a truncated file) is named in a warning
and discarded; training resumes from the checkpoint before it, or starts over when there is none.

On SIGTERM (what Slurm sends before the time limit and on preemption) `PreemptionGuard` lets the
current batch finish, saves, and training stops with `TrainingInterruptedError` (a non-zero exit); the
next attempt (Snakemake's `retries`, or Slurm's requeue) resumes from that batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import signal
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from workflow.infra.atomic import atomic_path

log = logging.getLogger(__name__)
STATE = "state.json"
PREVIOUS = "state.previous.json"  # the checkpoint before, kept until the next save is complete


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


class DamagedCheckpointError(ValueError):
    """A checkpoint file that does not read back as it was saved; `path` names it."""

    def __init__(self, path: pathlib.Path, reason: str) -> None:
        super().__init__(f"{path}: damaged checkpoint file ({reason})")
        self.path = path


def config_hash(value: Any) -> str:
    """A short stable hash of a JSON-able value (keys sorted): a checkpoint folder's name."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """The checkpoint folder of one training run (see the module docstring).

    The folder and all in it belong to the run (train.py keeps its TensorBoard files there too): it is
    removed whole when training ends, and when it holds no complete checkpoint. Only its `owner` (the
    chief worker) changes it; the other workers of a cluster only read it, so that two processes never
    discard or promote the same files at once.
    """

    def __init__(self, folder: str | os.PathLike[str], owner: bool = True) -> None:
        self.folder = pathlib.Path(folder)
        self.owner = owner
        self._latest: dict[str, Any] | None = None  # the state of the newest complete checkpoint
        self._looked = False  # whether the folder was searched for it (once per process)

    def exists(self) -> bool:
        """Whether there is a complete checkpoint to resume from."""
        return self._newest() is not None

    def position(self) -> tuple[int, int]:
        """(epochs done, batches of the next) of the saved checkpoint; (0, 0) when there is none."""
        state = self._newest()
        return (state["epoch"], state["batch"]) if state else (0, 0)

    def save(self, model: keras.Model, progress: Progress) -> None:
        before = self._newest()  # first: looking removes a folder that holds no complete checkpoint
        self.folder.mkdir(parents=True, exist_ok=True)
        variables = training_variables(model)
        name = f"variables-e{progress.epoch}-b{progress.batch}.npz"
        with atomic_path(self.folder / name) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, *[np.asarray(variable.numpy()) for variable in variables])
        state = {**dataclasses.asdict(progress), "variables": name, "paths": [variable.path for variable in variables]}
        moved = before is None or before["variables"] != name  # not a second save at the same position
        if before is not None and moved:
            # The newest checkpoint stays until this one is complete, and one save longer: if this one
            # is found damaged, a rerun loses only the batches since that one, not all of training.
            self._write_state(PREVIOUS, before)
        self._write_state(STATE, state)
        self._latest = state
        if moved:
            keep = {name, before["variables"] if before else name}
            for stale in self.folder.glob("variables-*.npz"):
                if stale.name not in keep:
                    stale.unlink(missing_ok=True)
        log.info("checkpoint: epoch %d batch %d saved in %s", progress.epoch, progress.batch, self.folder)

    def restore(self, model: keras.Model) -> Progress:
        """Load the saved variables into `model` (compiled) and return the progress; a fresh Progress if none."""
        state = self._newest()
        if state is None:
            return Progress()
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
        progress = Progress(**{field.name: state[field.name] for field in dataclasses.fields(Progress)})
        log.info("resuming from %s: epoch %d, batch %d", self.folder, progress.epoch, progress.batch)
        return progress

    @contextlib.contextmanager
    def removed_unless_saved(self) -> Iterator[None]:
        """On a failure before any checkpoint exists, remove the folder (it holds at most this attempt's
        TensorBoard files, nothing to resume from), so that no orphan is left when the config changes."""
        try:
            yield
        except BaseException:
            if self.owner and not self.exists():
                self.remove()
            raise

    def remove(self) -> None:
        """Delete the folder, and the checkpoint root above it when that is left empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()  # fails, as it should, while another run's folder is in it

    def _newest(self) -> dict[str, Any] | None:
        """The state of the newest complete checkpoint: state.json's, else the previous one's.

        A damaged file is named in a warning; the owner then discards it: a good previous checkpoint
        replaces state.json, and with none the folder goes (training starts over).
        """
        if self._looked:
            return self._latest
        self._looked = True
        damaged: list[pathlib.Path] = []
        for name in (STATE, PREVIOUS):
            if not (self.folder / name).is_file():
                continue
            try:
                self._latest = self._read(name)
                break
            except DamagedCheckpointError as error:
                log.warning("%s; %s", error, "discarding it" if self.owner else "skipping it (the chief discards it)")
                damaged.append(error.path)
        if self._latest is not None and damaged:
            log.warning("%s: resuming from the checkpoint before the damaged one (epoch %d, batch %d)",
                        self.folder / PREVIOUS, self._latest["epoch"], self._latest["batch"])  # fmt: skip
            if self.owner:  # state.json is replaced, not deleted first: a reader always finds one of the two
                self._write_state(STATE, self._latest)
                for path in damaged:
                    if path.suffix == ".npz":
                        path.unlink(missing_ok=True)
        elif self._latest is None and self.owner and self.folder.exists():
            if damaged:
                log.warning("%s: no complete checkpoint is left; training starts from the beginning", self.folder)
            self.remove()  # damaged files, or what an attempt killed before its first save left
        return self._latest

    def _write_state(self, name: str, state: dict[str, Any]) -> None:
        """The state with the sha256 of its content, so that a flipped byte that still parses is found too.

        Not write_json, which writes NaN as null: the digest must cover exactly what is written, and a
        NaN loss in the history must not make a good checkpoint look damaged.
        """
        text = json.dumps({**state, "sha256": _digest(state)}, indent=2)
        with atomic_path(self.folder / name) as temporary:
            temporary.write_text(text + "\n", encoding="utf-8")

    def _read(self, name: str) -> dict[str, Any]:
        """The state in `name`, checked against its digest, its variables file read through (CRC-32 of each array)."""
        path = self.folder / name
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            digest = state.pop("sha256", None)  # None: saved before states had one
            if digest is not None and digest != _digest(state):
                raise ValueError("its content differs from what was saved: sha256 mismatch")
            missing = {"variables", "paths", *(field.name for field in dataclasses.fields(Progress))} - set(state)
            if missing:
                raise ValueError(f"no {', '.join(sorted(missing))}")
            variables = self.folder / state["variables"]
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise DamagedCheckpointError(path, str(error)) from error
        try:
            with zipfile.ZipFile(variables) as archive:
                for member in archive.infolist():
                    with archive.open(member) as handle:
                        while handle.read(1 << 24):
                            pass
                names = set(archive.namelist())
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise DamagedCheckpointError(variables, str(error)) from error
        if names != {f"arr_{index}.npy" for index in range(len(state["paths"]))}:
            raise DamagedCheckpointError(variables, f"{len(names)} arrays, {name} lists {len(state['paths'])}")
        return state


def _digest(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


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
        # step and convert its logs (see EpochSummaries in workflow/train/trainer.py); at the start there
        # are no logs. The batches before this one are done, so this saves what a save after them would.
        done = self.first_batch + batch
        if self.guard.requested.is_set():
            self.save(self.epoch, done)
            self.interrupted_at = (self.epoch, done)
            self.model.stop_training = True  # Keras runs this batch, then stops; the resume redoes it
        elif batch and self.every_steps and done // self.every_steps > self.previous // self.every_steps:
            self.save(self.epoch, done)  # the first call at or past each multiple of every_steps
        self.previous = done
