"""HTTP routes of the platform events (app.integrations.platform_events): the signed inbound endpoint, the
broker's inbound secret and the account state."""
