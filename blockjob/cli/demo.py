"""`blockjob demo`: the main job end to end on a real QEMU, with pictures."""

from __future__ import annotations

import argparse
import sys

from blockjob.cli.common import EXIT_UNUSABLE
from blockjob.demo import run_demo
from blockjob.demo.signals import Stopped
from blockjob.errors import BlockJobError


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: the demo is one fixed story


def run(args: argparse.Namespace) -> int:
    del args
    try:
        return run_demo()
    except Stopped as stop:
        sys.stderr.write(f"demo: {stop}; QEMU stopped, temporary files removed\n")
        return 128 + stop.signum
    except (BlockJobError, OSError, TimeoutError) as exc:
        # The demo could not run at all (no QEMU, a failing qemu-img, no temporary space).
        sys.stderr.write(f"demo: {exc}\n")
        return EXIT_UNUSABLE
