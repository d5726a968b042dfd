"""Identity: API keys, access and refresh tokens, MFA, SSO, roles and permissions."""
