"""The QEMU side: the QMP monitor adapter, node addressing, bitmap actions, reopen.

May import: blockjob.errors, blockjob.model. Knows nothing of XML or status files.
"""
