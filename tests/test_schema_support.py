"""Shared by the schema tests: a small valid document, the schema corpus, and engines.

MINIMAL is this project's own smallest <domstatus> that still uses every job type and every
storage-source construct the schemas model; tests/data/invalid/ holds copies of its jobs
with one rule broken each. UNMODELLED holds every element whose content the schemas leave
open.
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

# Every element inside <blockjobs> whose content the schemas do not model (anything goes, as
# in anyContent), in its place and with a little content of its own.
UNMODELLED_JOBS = b"""    <blockjob name='open-network' type='create' state='running'>
      <src type='network' format='raw'>
        <source protocol='https' name='img' tlsFromConfig='1' index='21'>
          <host name='example.org'/>
          <identity user='u'>id</identity>
          <reconnect delay='5'/>
          <snapshot name='s'/>
          <config file='/c'/>
          <initiator><iqn name='q'/></initiator>
          <ssl verify='no'/>
          <cookies><cookie name='c'>v</cookie></cookies>
          <readahead size='1'/>
          <timeout seconds='2'/>
          <knownHosts path='/k'/>
          <slices><slice type='storage' offset='0' size='1'/></slices>
          <auth username='u'><secret type='iscsi' usage='x'/></auth>
          <encryption format='luks'><secret type='passphrase' uuid='x'/></encryption>
          <reservations managed='yes'/>
          <privateData>
            <reservations mgralias='pr0'/>
            <relPath>r</relPath>
            <fdsets><fdset id='1'/></fdsets>
            <thresholdEvent indexed='yes'/>
            <nbdkit><pid>1</pid></nbdkit>
          </privateData>
        </source>
      </src>
    </blockjob>
    <blockjob name='open-nvme' type='copy' state='ready'>
      <chains>
        <disk type='nvme' format='raw'>
          <source type='pci' managed='yes' namespace='1' index='22'>
            <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
            <reconnect enabled='yes'/>
            <seclabel model='dac' relabel='no'><label>x</label></seclabel>
          </source>
          <backingStore type='file' index='23'>
            <format type='qcow2'>
              <metadata_cache><max_size unit='bytes'>1</max_size></metadata_cache>
            </format>
            <source file='/img/b.qcow2'/>
            <backingStore/>
          </backingStore>
        </disk>
      </chains>
    </blockjob>
"""

UNMODELLED = HEAD + b"  <blockjobs active='yes'>\n" + UNMODELLED_JOBS + b"  </blockjobs>\n" + TAIL


def both(data: bytes, filename: str = "<test>") -> Report:
    return validate_bytes(data, filename, ("rng", "xsd"))
