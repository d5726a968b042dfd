"""Events from the broker's trading platform (issue 17): signed inbound messages (Standard Webhooks) and the
per-trader account state they keep current. The HTTP routes are in app/admin/platform_events."""
