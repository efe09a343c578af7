"""callcenter: a real-time queue CTI service for Asterisk."""

__version__ = "0.1.0"
