"""tf-lifecycle: the Python package behind the Snakemake workflow, one module per stage."""
