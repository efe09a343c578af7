"""The call center's state, in three steps: translate (``callcenter.ami.events``)
→ apply (the owners here: ``agents``, ``calls``, ``connections``, with the
cross-owner rules of a queue call in ``flow``) → count (``counting``).
``callcenter.center.Callcenter`` routes events through them and publishes one
``Changes`` per event (``changes``).  Nothing here reads AMI headers or does I/O.
"""
