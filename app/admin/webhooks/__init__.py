"""HTTP routes of the outbound webhooks (app.integrations.webhooks): endpoints, secrets, the delivery log."""
