"""Send a step's output to its Snakemake log file and keep TensorFlow's start-up noise down."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import types

# Before TensorFlow is imported: hide its C++ INFO lines; warnings and errors still reach the log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def log_to_file(path: str | None) -> None:
    """Route Python logging, stdout and stderr (file descriptors 1 and 2, so C++ output too) to `path`."""
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _report_failures_to(os.dup(2), path)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(handle, 1)
        os.dup2(handle, 2)
        os.close(handle)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _report_failures_to(snakemake_stderr: int, log_path: str) -> None:
    """On an uncaught exception, also write its one-line cause to Snakemake's own output.

    The log may be unwritable (a full or read-only disk holds it), and Snakemake prints only
    "check the log" otherwise.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: types.TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            previous(kind, error, traceback)
        line = f"step failed ({log_path}): {kind.__name__}: {error}\n"
        with contextlib.suppress(OSError):
            os.write(snakemake_stderr, line.encode("utf-8", "replace"))

    sys.excepthook = hook


_interrupted = False


def _on_interrupt(signum: int, frame: object) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def record_interrupts() -> None:
    """Remember a Ctrl-C (SIGINT) of the head snakemake, for `why_the_run_stopped`.

    Snakemake catches the KeyboardInterrupt, cancels its jobs and keeps no trace of why. The handler
    raises the same KeyboardInterrupt as Python's own; a SIGINT that was ignored (a background
    start) stays ignored.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _on_interrupt)


def why_the_run_stopped(scheduler: object) -> str | None:
    """For Snakemake's `onerror`: say so when the run was stopped (SIGTERM, Ctrl-C) rather than failed.

    Snakemake then ends with "At least one job did not complete successfully", which reads like a
    failure. It keeps the stop request and the failed jobs on its scheduler (`_user_kill`, `_errors`,
    private names of Snakemake 9); read defensively, they only decide the wording.
    """
    failed = bool(getattr(scheduler, "_errors", False))
    if _interrupted:
        then = "some jobs had also failed: see the errors above" if failed else "no job had failed"
        return (
            f"snakemake was interrupted (Ctrl-C): it cancelled the jobs it was running; {then}. "
            "Run the same command again to go on from there (a finished step is not redone); if Snakemake "
            "then names incomplete files (what a cancelled job left, such as the old model of a forced retrain), "
            "add --rerun-incomplete to redo those steps and every step after them. "
            "On Slurm, a second Ctrl-C can stop the cancellation: `make slurm-cancel` cancels what is left."
        )
    if getattr(scheduler, "_user_kill", None) != "graceful":
        return None
    if failed:
        return "snakemake was asked to stop (SIGTERM) and some jobs had also failed: see the errors above"
    return (
        "snakemake was asked to stop (SIGTERM): it let the running jobs finish and started no new ones; "
        "no job failed. Run the same command again to go on from there."
    )
