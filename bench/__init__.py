"""`make bench`: load, dump, save and restart-at-scale timings against lxml and peer libraries.

Every figure is a median over repeated runs; every ratio divides by a baseline measured in the
same process, in the same run. docs/performance.md explains how to read the table.
"""
