"""Gateway configuration generated from the app's own tables (tiers, body limit, routes): `forexrisk gateway ...`."""
