"""Status XML, bytes to model and back, byte-exact with what libvirt writes.

Flow: parse (safe lxml parse) -> reader (libvirt's lenient rules) -> model -> writer -> bytes.
`document.StatusDocument` ties them together and keeps every byte outside `<blockjobs>`.
May import: blockjob.errors, blockjob.model. Nothing here talks to QEMU or touches the store.
"""
