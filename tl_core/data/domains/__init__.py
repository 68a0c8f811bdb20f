"""Domain registry: built-in digit domains, image folders and shifted variants."""
from tl_core.data.domains.base import (
    DOMAINS, Domain, DomainData, check_label_spaces, clear_memory_cache, list_domains, register_domain
)
from tl_core.data.domains import digits as _digits  # noqa: F401  (registers the built-ins)
from tl_core.data.domains.folder import FolderDomain, register_folder
from tl_core.data.domains.lookup import get_domain
from tl_core.data.domains.shift import SHIFTS, ShiftedDomain

__all__ = ["DOMAINS", "Domain", "DomainData", "FolderDomain", "SHIFTS", "ShiftedDomain", "check_label_spaces",
           "clear_memory_cache", "get_domain", "list_domains", "register_domain", "register_folder"]
