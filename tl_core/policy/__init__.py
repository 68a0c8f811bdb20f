"""Who may do what: sessions and their quotas, what a session may see, and the checks on everything a user uploads."""
