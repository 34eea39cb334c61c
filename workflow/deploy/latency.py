"""Single-example latency of each deployable format, the figure a serving or on-device budget asks for.

Each is the median of `repeats` timed runs of one example after a warm-up, in milliseconds: the
SavedModel through its serving signature in TensorFlow, a TFLite file with LiteRT on 1 thread, the
TF.js model in Node.js (workflow/deploy/tfjs.py). Shared machines are noisy: compare formats measured in
the same run (benchmarks/deploy_formats.py prints them side by side as ratios).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from workflow.data.features import as_numpy, main_output
from workflow.deploy.export import SIGNATURE


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: graph tracing, allocation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def saved_model_latency_ms(path: str, example: dict[str, np.ndarray], repeats: int = 30) -> float:
    """`example`: served inputs of one example ({"images": [1, ...]} or one [1] array per column)."""
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    batch = {name: tf.constant(as_numpy(values)) for name, values in example.items()}
    return median_ms(lambda: main_output(serve(**batch)).numpy(), repeats)


def tflite_latency_ms(path: str, example: dict[str, np.ndarray], repeats: int = 30) -> float:
    runner = Interpreter(model_path=path, num_threads=1).get_signature_runner(SIGNATURE)
    batch = {name: np.ascontiguousarray(as_numpy(values)) for name, values in example.items()}
    return median_ms(lambda: runner(**batch), repeats)
