#!/usr/bin/env python3
"""Render airflow.cfg.template into $AIRFLOW_HOME/airflow.cfg (used by scripts/setup.sh)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facefactory.settings import write_airflow_cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--airflow-home", required=True, type=Path)
    parser.add_argument("--facefactory-home", required=True, type=Path)
    args = parser.parse_args(argv)
    print(write_airflow_cfg(args.airflow_home.resolve(), args.facefactory_home.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
