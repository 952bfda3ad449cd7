"""`blockjob demo`: a commit survives its daemon, shown as a picture of real QEMU data."""

from blockjob.demo.run import run_demo

__all__ = ["run_demo"]
