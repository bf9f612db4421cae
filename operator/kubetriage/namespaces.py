"""Which namespaces an instance serves: `KUBETRIAGE_NAMESPACES`, with kopf's pattern syntax.

Every path that reads or writes in namespaces goes through one `NamespaceSelection`: kopf's
watches, the reports adopted at start-up, and `kubetriage scan`. Instances given disjoint
selections (shards) therefore never touch each other's reports.

The syntax is kopf's (`kopf.run(namespaces=...)`): each entry is a namespace or a glob with `*`
and `?` (`team-a-*`); an entry starting with `!` excludes. Without exclusions a namespace is
selected when any entry matches it. With one, the entries are read left to right as one kopf
pattern: `team-*,!team-sandbox` is every `team-*` but `team-sandbox`; a leading exclusion starts
from every namespace (`!kube-system`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

_GLOB_CHARACTERS = frozenset("*?[!")


@dataclass(frozen=True)
class NamespaceSelection:
    """The namespaces one instance serves; no patterns means every namespace."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[str] | None) -> NamespaceSelection:
        """A selection from setting values (blank entries ignored)."""
        return cls(tuple(p.strip() for p in patterns or () if p.strip()))

    @property
    def everything(self) -> bool:
        """Whether every namespace is selected (no patterns configured)."""
        return not self.patterns

    def exact(self) -> list[str] | None:
        """The namespaces themselves when every entry is a plain name, so that reads can be
        made per namespace; None when a glob or an exclusion needs a cluster-wide read that
        `matches` then filters."""
        if self.everything or any(_GLOB_CHARACTERS & set(p) for p in self.patterns):
            return None
        return list(dict.fromkeys(self.patterns))

    def matches(self, namespace: str) -> bool:
        """Whether this selection serves `namespace`."""
        if self.everything:
            return True
        if not self._excludes:
            return any(fnmatch.fnmatchcase(namespace, p) for p in self.patterns)
        globs = list(self.patterns)
        if globs[0].startswith("!"):
            globs.insert(0, "*")
        # kopf's algorithm: the first glob matches, exclusions un-match, later inclusions
        # re-match only what the first glob matched.
        matched = first = fnmatch.fnmatchcase(namespace, globs[0])
        for glob in globs[1:]:
            if glob.startswith("!"):
                matched = matched and not fnmatch.fnmatchcase(namespace, glob[1:])
            else:
                matched = matched or (first and fnmatch.fnmatchcase(namespace, glob))
        return matched

    def for_kopf(self) -> list[str]:
        """The patterns as `kopf.run(namespaces=...)` takes them: each entry its own pattern,
        or, with an exclusion, all of them as one comma-separated pattern (kopf ORs the
        entries of its list, which would turn `!x` into "everything but x")."""
        if self._excludes:
            return [",".join(self.patterns)]
        return list(self.patterns)

    @property
    def _excludes(self) -> bool:
        return any(p.startswith("!") for p in self.patterns)
