"""`envmodules` from config with real Lmod (Debian's lmod): `snakemake --sdm env-modules` loads the
configured module for the step, and the step's manifest records it."""

from __future__ import annotations

import json
import pathlib

import yaml
from helpers import copy_repository, require_tool, snakemake

LMOD_INIT = pathlib.Path("/usr/share/lmod/lmod/init/bash")
RUN = "results/runs/digits_mlp/seed0"


def test_configured_module_is_loaded_for_its_step(tmp_path):
    """With envmodules.manifest = [tflc-test/1.0] and --sdm env-modules, the manifest step runs with it loaded."""
    if not LMOD_INIT.is_file():
        require_tool("lmod", "apt-get install lmod")  # fails with the install hint
    modules = tmp_path / "modulefiles" / "tflc-test"
    modules.mkdir(parents=True)
    (modules / "1.0.lua").write_text('setenv("TFLC_TEST_MODULE", "loaded")\n')
    folder = copy_repository(tmp_path / "repo")
    config = yaml.safe_load((folder / "configs/default.yaml").read_text())
    config["experiments"] = {"digits_mlp": {**config["experiments"]["digits_mlp"], "train": {"epochs": 1}}}
    config["envmodules"] = {"manifest": ["tflc-test/1.0"]}
    (folder / "modules.yaml").write_text(yaml.safe_dump(config))
    # Non-interactive bash (Snakemake's shell) gets the `module` function from BASH_ENV, as on clusters.
    env = {"BASH_ENV": str(LMOD_INIT), "MODULEPATH": str(tmp_path / "modulefiles")}

    result = snakemake(folder, f"{RUN}/manifest.json", "--cores", "2", "--sdm", "env-modules",
                       "--configfile", "modules.yaml", "--replace-workflow-config", env=env)  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((folder / RUN / "manifest.json").read_text())
    assert manifest["modules"] == "tflc-test/1.0"
    without = snakemake(folder, f"{RUN}/manifest.json", "--cores", "2", "--forcerun", "manifest",
                        "--configfile", "modules.yaml", "--replace-workflow-config", env=env)  # fmt: skip
    assert without.returncode == 0, without.stderr[-3000:]
    assert json.loads((folder / RUN / "manifest.json").read_text())["modules"] is None  # no --sdm env-modules
