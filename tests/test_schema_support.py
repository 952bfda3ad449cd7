"""Shared by the schema tests: a small valid document, the schema corpus, and engines.

MINIMAL is this project's own smallest <domstatus> that still uses every job type and every
storage-source construct the schemas model; tests/data/invalid/ holds copies of its jobs
with one rule broken each.
"""

from __future__ import annotations

from pathlib import Path

from blockjob.validation.check import Report, validate_bytes

DATA = Path(__file__).resolve().parent / "data"
INVALID = DATA / "invalid"
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

# Hand-edited status files in ../shared that no libvirt wrote and no schema may accept.
CORRUPT = frozenset({"corrupt1-edited.xml"})

HEAD = b"""<domstatus state='running' reason='booted' pid='4242'>
  <taint flag='high-privileges'/>
  <monitor path='/run/t/monitor.sock' type='unix'/>
  <nodename index='9'/>
"""
TAIL = b"""  <agentTimeout>-2</agentTimeout>
  <domain type='kvm' id='1'>
    <name>t</name>
    <devices>
      <disk type='file' device='disk'>
        <source file='/img/a.qcow2' index='1'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
</domstatus>
"""

JOBS = b"""    <blockjob name='active' type='active-commit' state='ready' jobflags='0x4'>
      <disk dst='vda'/>
      <base node='libvirt-2-format'/>
      <top node='libvirt-1-format'/>
      <deleteCommittedImages/>
      <disabledBaseBitmaps>
        <bitmap name='b1'/>
      </disabledBaseBitmaps>
    </blockjob>
    <blockjob name='backup' type='backup' state='running' jobflags='0x0'>
      <disk dst='vdb'/>
      <bitmap name='b1'/>
      <store type='block' format='raw'>
        <source dev='/dev/sdz' index='7'/>
      </store>
    </blockjob>
    <blockjob name='broken' type='broken' state='failed' brokentype='commit'>
      <errmsg>it broke</errmsg><disk dst='vdc'/>
    </blockjob>
    <blockjob name='commit' type='commit' state='pending' newstate='failed' jobflags='0x0'>
      <disk dst='vdd'/>
      <base node='libvirt-5-storage'/>
      <top node='libvirt-4-storage'/>
      <topparent node='libvirt-3-storage'/>
    </blockjob>
    <blockjob name='copy' type='copy' state='ready' jobflags='0x0' shallownew='yes'>
      <disk dst='vde' mirror='yes'/>
    </blockjob>
    <blockjob name='create' type='create' state='running'>
      <create mode='storage'/>
      <src type='network' format='qcow2'>
        <source protocol='nbd' name='export' tlsFromConfig='0' index='8'>
          <host name='example.org' port='10809'/>
          <privateData>
            <nodenames>
              <nodename type='storage' name='libvirt-8-storage'/>
            </nodenames>
            <objects>
              <secret type='auth' alias='libvirt-8-storage-secret0'/>
            </objects>
          </privateData>
        </source>
      </src>
    </blockjob>
    <blockjob name='orphan' type='copy' state='ready'>
      <chains>
        <disk type='file' format='qcow2'>
          <source file='/img/top.qcow2' index='11'>
            <privateData>
              <nodenames>
                <nodename type='storage' name='libvirt-11-storage'/>
                <nodename type='format' name='libvirt-11-format'/>
              </nodenames>
            </privateData>
          </source>
          <backingStore type='file' index='12'>
            <format type='qcow2'/>
            <source file='/img/base.qcow2'>
              <privateData>
                <relPath>base.qcow2</relPath>
              </privateData>
            </source>
            <backingStore/>
          </backingStore>
        </disk>
        <mirror type='file' format='raw'>
          <source file='/img/mirror.raw' index='13'/>
        </mirror>
      </chains>
    </blockjob>
    <blockjob name='pull' type='pull' state='running'>
      <disk dst='vdf'/>
      <base node='libvirt-14-format'/>
    </blockjob>
"""

MINIMAL = HEAD + b"  <blockjobs active='yes'>\n" + JOBS + b"  </blockjobs>\n" + TAIL


def both(data: bytes, filename: str = "<test>") -> Report:
    return validate_bytes(data, filename, ("rng", "xsd"))
