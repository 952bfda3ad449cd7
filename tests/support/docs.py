"""Small status documents for unit tests, built around a `<blockjobs>` body."""

from __future__ import annotations


def _image(index: int, path: str, *, top: bool = True) -> str:
    index_attr = f" index='{index}'" if top else ""
    return (
        f"<source file='{path}'{index_attr}><privateData><nodenames>"
        f"<nodename type='storage' name='libvirt-{index}-storage'/>"
        f"<nodename type='format' name='libvirt-{index}-format'/>"
        f"</nodenames></privateData></source>"
    )


def disk(target: str, indexes: tuple[int, ...], *, mirror: int | None = None) -> str:
    """A domain `<disk>` whose chain holds images `indexes`, top first."""
    top, *below = indexes
    chain = _image(top, f"/img/{target}-{top}.qcow2")
    backing = "<backingStore/>"
    for index in reversed(below):
        backing = (
            f"<backingStore type='file' index='{index}'><format type='qcow2'/>"
            f"{_image(index, f'/img/{target}-{index}.qcow2', top=False)}"
            f"{backing}</backingStore>"
        )
    mirror_xml = ""
    if mirror is not None:
        mirror_xml = (
            f"<mirror type='file' file='/img/{target}-copy.qcow2' format='qcow2' job='copy'>"
            f"<format type='qcow2'/>{_image(mirror, f'/img/{target}-copy.qcow2')}</mirror>"
        )
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>{chain}{backing}"
        f"{mirror_xml}<target dev='{target}' bus='virtio'/></disk>"
    )


DEFAULT_DISKS = disk("vda", (3, 2, 1)) + disk("vdb", (5, 4), mirror=9)


def status(blockjobs: str, disks: str = DEFAULT_DISKS) -> bytes:
    """A `<domstatus>` with the given `<blockjobs>` element and domain disks."""
    return (
        "<domstatus state='running' reason='booted' pid='1'>\n"
        "  <monitor path='/run/test/monitor.sock' type='unix'/>\n"
        f"  {blockjobs}\n"
        "  <domain type='qemu' id='1'>\n"
        "    <name>unit</name>\n"
        f"    <devices>{disks}</devices>\n"
        "  </domain>\n"
        "</domstatus>\n"
    ).encode()


def jobs(*elements: str) -> bytes:
    return status("<blockjobs active='no'>" + "".join(elements) + "</blockjobs>")
