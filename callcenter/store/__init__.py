"""Persistence of the call center's state (Redis)."""
