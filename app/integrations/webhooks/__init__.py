"""Outbound webhooks to broker platforms (issue 17, points 4 and 5): endpoints, signed deliveries (Standard
Webhooks), the retry schedule, and the SSRF-safe transport. The HTTP routes are in app/admin/webhooks."""
