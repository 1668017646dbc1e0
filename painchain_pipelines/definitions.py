"""Dagster entry point (`workspace.yaml`, `dagster dev -m painchain_pipelines.definitions`, `dg`):
everything under `defs/` — one folder per connector, each a single `build_connector_defs` call,
and `painchain_backend.py` for what their runs share."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
