"""Asterisk's queue_log: read, followed and replayed to fill gaps in AMI."""
