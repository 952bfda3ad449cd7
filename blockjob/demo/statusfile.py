"""A minimal `<domstatus>` for a running test domain, in libvirt 9.0's layout.

Only what recovery reads is there: the monitor socket, an empty `<blockjobs>`,
and the embedded `<domain>` whose disks carry libvirt's node names in
`<privateData><nodenames>` on every `<source>` of the backing chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from blockjob.demo.qemu import AttachedImage
from blockjob.statusxml.node import escape_attr, escape_text


@dataclass(frozen=True)
class DiskChain:
    target: str
    images: tuple[AttachedImage, ...]  # top first


def _private(image: AttachedImage, pad: str) -> list[str]:
    return [
        f"{pad}  <privateData>",
        f"{pad}    <nodenames>",
        f"{pad}      <nodename type='storage' name='{image.storage_node}'/>",
        f"{pad}      <nodename type='format' name='{image.format_node}'/>",
        f"{pad}    </nodenames>",
        f"{pad}  </privateData>",
    ]


def _disk(disk: DiskChain) -> list[str]:
    top, *backing = disk.images
    pad = " " * 8
    lines = [
        "      <disk type='file' device='disk'>",
        f"{pad}<driver name='qemu' type='qcow2'/>",
        f"{pad}<source file='{escape_attr(str(top.path))}' index='{top.index}'>",
        *_private(top, pad),
        f"{pad}</source>",
    ]
    closers: list[str] = []
    for image in backing:
        lines += [
            f"{pad}<backingStore type='file' index='{image.index}'>",
            f"{pad}  <format type='qcow2'/>",
            f"{pad}  <source file='{escape_attr(str(image.path))}'>",
            *_private(image, pad + "  "),
            f"{pad}  </source>",
        ]
        closers.insert(0, f"{pad}</backingStore>")
        pad += "  "
    lines.append(f"{pad}<backingStore/>")
    lines += closers
    lines += [f"        <target dev='{escape_attr(disk.target)}' bus='virtio'/>", "      </disk>"]
    return lines


def domstatus_xml(name: str, monitor_path: str, pid: int, disks: Sequence[DiskChain]) -> bytes:
    last_index = max((image.index for disk in disks for image in disk.images), default=0)
    lines = [
        f"<domstatus state='running' reason='booted' pid='{pid}'>",
        f"  <monitor path='{escape_attr(monitor_path)}' type='unix'/>",
        f"  <nodename index='{last_index}'/>",
        "  <blockjobs active='no'/>",
        "  <agentTimeout>-2</agentTimeout>",
        "  <domain type='qemu' id='1'>",
        f"    <name>{escape_text(name)}</name>",
        f"    <uuid>{uuid.uuid5(uuid.NAMESPACE_URL, 'blockjob:' + name)}</uuid>",
        "    <memory unit='KiB'>65536</memory>",
        "    <currentMemory unit='KiB'>65536</currentMemory>",
        "    <vcpu placement='static'>1</vcpu>",
        "    <os>",
        "      <type arch='x86_64' machine='none'>hvm</type>",
        "    </os>",
        "    <devices>",
        "      <emulator>/usr/bin/qemu-system-x86_64</emulator>",
    ]
    for disk in disks:
        lines += _disk(disk)
    lines += ["    </devices>", "  </domain>", "</domstatus>", ""]
    return "\n".join(lines).encode()
