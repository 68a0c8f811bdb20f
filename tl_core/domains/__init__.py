"""Domain registry: built-in digit domains, image folders and shifted variants."""
from .base import DOMAINS, Domain, DomainData, check_label_spaces, clear_memory_cache, list_domains, register_domain
from . import digits as _digits  # noqa: F401  (registers the built-ins)
from .folder import FolderDomain, register_folder
from .lookup import get_domain
from .shift import SHIFTS, ShiftedDomain

__all__ = ["DOMAINS", "Domain", "DomainData", "FolderDomain", "SHIFTS", "ShiftedDomain", "check_label_spaces",
           "clear_memory_cache", "get_domain", "list_domains", "register_domain", "register_folder"]
