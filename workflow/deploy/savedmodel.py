"""The files a SavedModel folder must hold, checked without importing TensorFlow."""

from __future__ import annotations

import pathlib


def check_saved_model(path: str | pathlib.Path, remedy: str = "rerun the export step") -> None:
    """Refuse a SavedModel folder with a missing part, naming it, before a converter or loader fails obscurely."""
    folder = pathlib.Path(path)
    needed = [folder / "saved_model.pb", folder / "variables" / "variables.index"]
    missing = [str(part.relative_to(folder)) for part in needed if not part.is_file()]
    if not folder.is_dir() or missing:
        what = "the folder does not exist" if not folder.is_dir() else f"missing: {', '.join(missing)}"
        raise ValueError(f"{folder}: not a complete SavedModel ({what}); {remedy}")
