"""TensorBoard's HParams dashboard for a sweep, written offline from finished runs.

    tensorboard --logdir results/runs

Each run of a sweep's points becomes one HParams session, `results/runs/_hparams/<sweep>/<point>/seed<k>/`:
its swept values as the session's hyperparameters (the point's name as its group, so a point's seeds
are one row, their metrics averaged) and its figures as scalars: the test split's numbers from
metrics.json (`test/accuracy`, ...) and the last epoch's of history.json (`train/loss`,
`validation/loss`, ...). No experiment summary is written: TensorBoard infers the columns from the
sessions, so any number of sweeps share one log folder (one summary would hide the other sweeps').

The folder name starts with `_`, which no experiment name may (configs/schema.yaml), so it never
meets a run's folder. Uses tensorboard's own protobufs and event writer: no TensorFlow.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

from workflow.config.values import is_number
from workflow.infra.atomic import atomic_path, read_json

LEFT_OUT = {"examples"}  # a count, not a figure to compare points by


def session_figures(metrics: dict[str, Any], history: dict[str, Any]) -> dict[str, float]:
    """Scalar tag -> value: every number of metrics.json, and each history series' last value."""
    figures = {
        f"test/{key}": float(value) for key, value in metrics.items() if is_number(value) and key not in LEFT_OUT
    }
    for key, series in history.items():
        if not isinstance(series, list) or not series or not is_number(series[-1]):
            continue
        split, name = ("validation", key.removeprefix("val_")) if key.startswith("val_") else ("train", key)
        figures[f"{split}/{name}"] = float(series[-1])
    return figures


def hparam_value(value: Any) -> bool | float | str:
    """What an HParams session can hold: a bool, a number or a string (a list or mapping as its JSON)."""
    if isinstance(value, (bool, str)):
        return value
    if is_number(value):
        return float(value)
    return json.dumps(value, sort_keys=True)


def write_sweep_hparams(sweep: str, entry: dict[str, Any], run_dirs: list[str], output: str) -> None:
    """One session per run folder of the sweep's points (`entry` is config["sweeps"][sweep])."""
    with atomic_path(output) as temporary:
        temporary.mkdir()
        for folder in map(pathlib.Path, run_dirs):
            point, seed = folder.parent.name, folder.name
            if point not in entry["points"]:
                raise ValueError(f"{folder}: {point} is not a point of sweep {sweep}")
            values = {key: hparam_value(value) for key, value in entry["points"][point].items()}
            figures = session_figures(read_json(folder / "metrics.json"), read_json(folder / "history.json"))
            write_session(temporary / point / seed, point, values, figures)
            print(f"sweep {sweep}: {point}/{seed}: {len(values)} value(s), {len(figures)} figure(s)", flush=True)


def write_session(folder: pathlib.Path, group: str, values: dict[str, Any], figures: dict[str, float]) -> None:
    """One event file: the session's start (its values, in session group `group`) and its figures at step 0.

    tensorboard's RecordWriter on a plain file, not its EventFileWriter: that one opens files through
    tf.io.gfile, which imports all of TensorFlow (seconds) when it is installed."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import summary_v2
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True)
    now = time.time()
    scalars = [summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in figures.items()]
    events = [
        event_pb2.Event(wall_time=now, file_version="brain.Event:2"),
        event_pb2.Event(
            wall_time=now, step=0, summary=summary_v2.hparams_pb(values, trial_id=group, start_time_secs=int(now))
        ),
        event_pb2.Event(wall_time=now, step=0, summary=summary_pb2.Summary(value=scalars)),
    ]
    with (folder / f"events.out.tfevents.{int(now)}.hparams").open("wb") as file:
        writer = RecordWriter(file)
        for event in events:
            writer.write(event.SerializeToString())
