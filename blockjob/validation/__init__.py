"""Schema validation of status XML (RelaxNG and XSD 1.1), one module per engine.

`check` is the public face; `problems` the report shape. May import: blockjob.errors,
blockjob.statusxml.parse. Loading never depends on this package: recovery stays lenient.
"""
