"""Names to domains: the resolver above every kind of domain (built-in, shifted, folder, upload).

`names.parse` reads the string; this turns the parts into a `Domain`. It sits above `base`,
`digits`, `folder` and `shift`, which never import it.
"""
from __future__ import annotations

from pathlib import Path

from tl_core.data.domains.base import DOMAINS, Domain
from tl_core.data.domains.folder import FolderDomain, upload_domain
from tl_core.data.domains.names import parse
from tl_core.data.domains.shift import ShiftedDomain


def get_domain(name: str) -> Domain:
    """A registered domain, a shifted variant `base+shift:severity`, `folder:PATH` or `upload:OWNER/NAME`
    (the grammar is `names.parse`)."""
    if isinstance(name, str) and name in DOMAINS:
        return DOMAINS.get(name)
    n = parse(name)
    if n.shifts:
        dom = get_domain(n.base)
        for kind, sev in n.shifts:
            dom = ShiftedDomain(dom, f"{kind}:{sev}")
        return dom
    if n.kind == "folder":
        return FolderDomain(Path(n.path), name=name)
    if n.kind == "upload":
        return upload_domain(name)
    return DOMAINS.get(name)  # raises with the list of known domains
