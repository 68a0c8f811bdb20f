"""Where images come from: the domains (built-in digits, shifted variants, users' folders), the loaders the trainer reads, and the per-image predictions behind every number."""
