"""Authentication domain: passwords, sessions, factors. No Starlette here."""
