"""Code every service shares: the API contracts, errors, paths and the observability plumbing."""
