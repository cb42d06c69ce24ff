"""The order state machine: the one place that says which status changes are legal."""

from __future__ import annotations

from apps.core.errors import Conflict

NEW = "new"
SUBMITTED = "submitted"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
EXPIRED = "expired"

TERMINAL = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})

TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({SUBMITTED, REJECTED, CANCELLED}),
    # A broker may fill (part of) an order before its acknowledgement reaches us.
    SUBMITTED: frozenset({ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED}),
    # A broker may still refuse an order it had acknowledged (e.g. Alpaca's late rejections).
    ACCEPTED: frozenset({PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED}),
    # Another partial fill keeps the order partially filled.
    PARTIALLY_FILLED: frozenset({PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED}),
    FILLED: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
}


class IllegalTransition(Conflict):
    default_code = "illegal_transition"


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is a legal move."""
    if current not in TRANSITIONS:
        raise IllegalTransition(f"Unknown order status {current!r}.")
    if not can_transition(current, target):
        if current in TERMINAL:
            raise IllegalTransition(f"The order is already {current}; it cannot become {target}.")
        raise IllegalTransition(f"An order cannot go from {current} to {target}.")
