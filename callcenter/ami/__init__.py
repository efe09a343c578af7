"""The project's own Asterisk Manager Interface client (see client.py)."""
