"""Webhooks: call and agent events POSTed to configured URLs (docs/integrations.md).

``events`` derives the documented events from the core's ``Changes``;
``outbox`` keeps each hook's undelivered events in memory and in Redis (in
the transaction of the change that produced them); ``delivery`` POSTs them
in order with retries; ``service`` is the child of the service tree.
"""
