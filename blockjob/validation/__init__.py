"""Schema validation of status XML, one module per engine; the public face is blockjob.validate."""
