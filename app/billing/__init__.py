"""Self-serve sign-up and Stripe billing (issue 16)."""
