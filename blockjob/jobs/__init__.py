"""Crash-safe starts of block jobs: persist the intent, act in QEMU, persist the result.

May import: blockjob.errors, blockjob.model, blockjob.statusxml, blockjob.store, blockjob.qemu.
"""
