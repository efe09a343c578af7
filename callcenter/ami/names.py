"""AMI event and action names the service relies on.

One place, so the dialplan test and the manager.conf test can check the
shipped Asterisk configuration against what the code really handles.
"""

# UserEvents raised by the shipped dialplan (asterisk-config/extensions.conf).
USER_EVENTS = frozenset({"CALLER", "CALLERHANGUP", "LOGGEDIN", "LOGGEDOUT"})

# queue_log verbs the shipped dialplan writes itself with QueueLog() (read by
# callcenter/queuelog/mapping.py): CALLER is the moment of UserEvent(CALLER).
QUEUE_LOG_VERBS = frozenset({"CALLER"})

# app_queue's own events; QueueMemberPaused is the pre-13 name of QueueMemberPause.
QUEUE_EVENTS = frozenset({
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "AgentRingNoAnswer",
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "QueueMemberPaused",
    "QueueMemberStatus",
})

# Channel events: a caller that vanishes without queue events (Hangup), and a
# hang-up requested while waiting, which tells a real abandon from a queue
# timeout (both publish QueueCallerAbandon; REFERENCE.md gotcha 20).
CHANNEL_EVENTS = frozenset({"Hangup", "HangupRequest", "SoftHangupRequest"})

EVENTS = frozenset({"UserEvent"}) | QUEUE_EVENTS | CHANNEL_EVENTS

# Actions the service sends (besides Login/Challenge/Logoff).
ACTIONS = frozenset({"Ping", "QueueStatus", "QueueSummary", "CoreShowChannels", "QueuePause"})
