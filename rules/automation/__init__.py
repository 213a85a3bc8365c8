"""Workflow automation: rule model, trigger matching, conditions, actions -> intents. Pure."""

from .intents import (
    ConditionResult,
    EditIntent,
    Evaluation,
    Intent,
    NotifyIntent,
    OutboundIntent,
)

__all__ = [
    "ConditionResult",
    "EditIntent",
    "Evaluation",
    "Intent",
    "NotifyIntent",
    "OutboundIntent",
]
