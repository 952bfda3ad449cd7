"""RelaxNG through lxml (libxml2), with libxml2's cascade of follow-up messages removed.

libxml2 reports a failure once per enclosing pattern ("Element blockjobs has extra content:
blockjob", "Invalid sequence in interleave", ...). Only the innermost reports say anything
about the actual mistake, so the rest are dropped.
"""

from __future__ import annotations

from lxml import etree

from blockjob.validation import schemafiles
from blockjob.validation.problems import Problem, place

# Summaries of an inner failure, never the failure itself.
_CASCADE = frozenset({
    "RELAXNG_ERR_INTERSEQ",
    "RELAXNG_ERR_CONTENTVALID",
    "RELAXNG_ERR_TYPECMP",
})
_VAGUE = frozenset({"RELAXNG_ERR_NOELEM", "RELAXNG_ERR_EXTRACONTENT"})


def check(root: etree._Element) -> tuple[bool, list[Problem]]:
    schema = schemafiles.relaxng(schemafiles.kind_of(root))
    if schema.validate(root.getroottree()):
        return True, []
    entries = list(schema.error_log)
    problems = _located(entries, root)
    return False, _innermost(problems, entries) or problems[:1]


def _located(entries: list[etree._LogEntry], root: etree._Element) -> list[Problem]:
    """Every entry as a Problem; entries without a place borrow the next one's."""
    problems: list[Problem] = []
    fallback_line, fallback_path = place(root)
    for entry in reversed(entries):
        line = entry.line if isinstance(entry.line, int) and entry.line > 0 else fallback_line
        path = entry.path or fallback_path
        fallback_line, fallback_path = line, path
        problems.append(Problem(line, path, entry.message, "rng"))
    problems.reverse()
    return problems


def _innermost(problems: list[Problem], entries: list[etree._LogEntry]) -> list[Problem]:
    """The precise reports; failing those, the most deeply placed vague one.

    libxml2 places "extra content" reports by where its backtracking gave up, which can be
    an earlier sibling of the real culprit, so a vague report is only a last resort.
    """
    kinds = [entry.type_name for entry in entries]
    precise = [p for p, kind in zip(problems, kinds, strict=True)
               if kind not in _CASCADE and kind not in _VAGUE]
    if precise:
        return list(dict.fromkeys(precise))
    vague = [p for p, kind in zip(problems, kinds, strict=True) if kind in _VAGUE]
    return [max(vague, key=lambda p: p.path.count("/"))] if vague else []
