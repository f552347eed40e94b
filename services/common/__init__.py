"""Code every service shares: the API contracts and the observability plumbing."""
