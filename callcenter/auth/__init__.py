"""Who may see and do what: users, roles, logins, sessions and the audit trail.

Built on ``twisted.cred``: the web layer turns what a request carries (a
session cookie, a password, a wallboard token, a trusted proxy's header) into
credentials and asks the portal (``checkers.make_portal``) for an avatar; the
avatar (``roles``) decides what the dashboard shows and which commands it
may send.  Nothing outside this package reads the users file.
"""
