"""Put the fault table written by the tests (conftest.py `reliability`) into docs/reliability.md.

Usage: python tests/write_reliability.py build/reliability-table.md docs/reliability.md
"""

from __future__ import annotations

import datetime
import pathlib
import platform
import subprocess
import sys

START, END = "<!-- fault table: start -->", "<!-- fault table: end -->"


def main(table_path: str, doc_path: str) -> None:
    table = pathlib.Path(table_path).read_text(encoding="utf-8").strip()
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    lost = sum(int(line.rstrip(" |").rsplit("|", 1)[1]) for line in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{START}\n_Written by `make reliability` on {stamp}, commit `{commit}`, {platform.machine()}, "
        f"{len(rows)} faults injected, {len(rows)} survived, files lost: {lost}._\n\n{table}\n{END}"
    )
    doc = pathlib.Path(doc_path)
    text = doc.read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    doc.write_text(before + block + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
