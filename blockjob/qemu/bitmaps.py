"""Which base bitmaps a commit disables, and how they are finished (docs/format.md#bitmaps).

Pure decisions over a `query-named-block-nodes` snapshot; QEMU is not touched here.
Chains are lists of node names from the commit's `top` down to the bottom image.
Every function returns QMP `transaction` actions plus the problems it had to skip,
so the caller can both act and tell the operator what needs attention.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from blockjob.qemu.monitor import Bitmap, BlockNode

Nodes = Mapping[str, BlockNode]
Action = dict[str, object]
# libvirt 9.0 adds this non-persistent bitmap to base just before pivoting an active
# commit, merges it into every merged bitmap afterwards and removes it.
TMP_ACTIVEWRITE = "libvirt-tmp-activewrite"


def _bitmap(nodes: Nodes, node: str, name: str) -> Bitmap | None:
    found = nodes.get(node)
    return found.bitmap(name) if found is not None else None


def chain_is_valid(chain: Sequence[str], name: str, nodes: Nodes) -> bool:
    """libvirt's rule: the copies of `name` down the chain are one unbroken run of
    consistent bitmaps (a copy may not reappear below a gap)."""
    found = ended = False
    for node in chain:
        bitmap = _bitmap(nodes, node, name)
        if bitmap is None:
            ended = found
            continue
        if ended or bitmap.inconsistent:
            return False
        found = True
    return found


def bitmaps_to_disable(chain: Sequence[str], base: str, nodes: Nodes) -> tuple[str, ...]:
    """Base bitmaps a commit would dirty: recording, consistent, with a valid chain."""
    node = nodes.get(base)
    if node is None:
        return ()
    return tuple(
        bitmap.name
        for bitmap in node.bitmaps
        if bitmap.recording
        and not bitmap.inconsistent
        and chain_is_valid(chain, bitmap.name, nodes)
    )


def disable_actions(base: str, names: Sequence[str]) -> list[Action]:
    return [
        {"type": "block-dirty-bitmap-disable", "data": {"node": base, "name": name}}
        for name in names
    ]


def _enable(base: str, name: str) -> Action:
    return {"type": "block-dirty-bitmap-enable", "data": {"node": base, "name": name}}


def reenable_actions(
    base: str, listed: Sequence[str], nodes: Nodes
) -> tuple[list[Action], list[str]]:
    """Enable each listed base bitmap that is still disabled (a failed or unstarted commit)."""
    actions: list[Action] = []
    problems: list[str] = []
    for name in listed:
        bitmap = _bitmap(nodes, base, name)
        if bitmap is None:
            problems.append(f"bitmap '{name}' is gone from {base}; nothing to re-enable")
        elif bitmap.inconsistent:
            problems.append(f"bitmap '{name}' in {base} is inconsistent; it can only be removed")
        elif not bitmap.recording:
            actions.append(_enable(base, name))
    return actions, problems


def remove_actions(node: str, name: str, nodes: Nodes) -> list[Action]:
    """Remove bitmap `name` from `node`, if it is there (libvirt's pivot-time bitmap from
    base, a push backup's bitmap from the disk's top)."""
    if _bitmap(nodes, node, name) is None:
        return []
    return [{"type": "block-dirty-bitmap-remove", "data": {"node": node, "name": name}}]


def finish_actions(
    committed: Sequence[str], chain: Sequence[str], base: str, listed: Sequence[str], nodes: Nodes
) -> tuple[list[Action], list[str]]:
    """After a successful commit: merge every committed image's bitmaps into base's
    same-named bitmap (created if missing), and enable the ones that should record:
    those recording in the topmost committed copy, and every listed one.

    Safe to repeat: merging is a union and enabling an enabled bitmap changes nothing.
    """
    actions: list[Action] = []
    problems: list[str] = []
    tmp = [{"node": base, "name": TMP_ACTIVEWRITE}] if _bitmap(nodes, base, TMP_ACTIVEWRITE) else []
    sources: dict[str, list[tuple[str, Bitmap]]] = {}
    for node in committed:
        for bitmap in nodes[node].bitmaps if node in nodes else ():
            sources.setdefault(bitmap.name, []).append((node, bitmap))
    # base's own copy is not judged: a merge that ran already (the pivot's, before
    # job-complete; a finish killed after it) made it, and it must not read as a gap below
    # a top-only bitmap (a libvirt checkpoint's). Merging into it is a union either way.
    above = [node for node in chain if node != base]
    for name, copies in sources.items():
        if not chain_is_valid(above, name, nodes):
            problems.append(f"bitmap '{name}' has an invalid chain; not merged")
            continue
        topmost = copies[0][1]
        target = _bitmap(nodes, base, name)
        if target is None:
            actions.append({"type": "block-dirty-bitmap-add", "data": {
                "node": base, "name": name, "persistent": topmost.persistent,
                "granularity": topmost.granularity,
                "disabled": not (topmost.recording or name in listed),
            }})
        elif not target.recording and (topmost.recording or name in listed):
            actions.append(_enable(base, name))
        actions.append({"type": "block-dirty-bitmap-merge", "data": {
            "node": base, "target": name,
            "bitmaps": [{"node": node, "name": name} for node, _ in copies] + tmp,
        }})
    rest, rest_problems = reenable_actions(base, [n for n in listed if n not in sources], nodes)
    return actions + rest + remove_actions(base, TMP_ACTIVEWRITE, nodes), problems + rest_problems


def added(actions: Sequence[Action]) -> set[str]:
    """The bitmaps `actions` add (a merge makes a listed bitmap gone from base anew when a
    committed image has a copy of it)."""
    made = set()
    for action in actions:
        data = action["data"]
        if action["type"] == "block-dirty-bitmap-add" and isinstance(data, Mapping):
            made.add(str(data["name"]))
    return made


def unusable(
    base: str, listed: Sequence[str], nodes: Nodes, made: Collection[str] = ()
) -> tuple[str, ...]:
    """Listed bitmaps that can never be enabled as they are: gone from base (and not
    `made` by the step's actions), or inconsistent."""
    return tuple(
        name for name in listed
        if ((bitmap := _bitmap(nodes, base, name)) is None and name not in made)
        or (bitmap is not None and bitmap.inconsistent)
    )
