"""Who is who and who may do what: accounts, tokens, grants, and access re-checked while it lasts."""
