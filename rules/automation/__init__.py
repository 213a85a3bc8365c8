"""Workflow automation: rule model, trigger matching, conditions, actions -> intents. Pure.

See docs/automation.md for how the modules fit; each module's docstring says how it works.
"""

from .engine import MAX_DEPTH, evaluate
from .formatting import PLAIN, TextFormat
from .intents import (
    ConditionResult,
    EditIntent,
    Evaluation,
    Intent,
    NotifyIntent,
    OutboundIntent,
)
from .model import Rule, RuleInvalid, rule_json, to_document_form, to_rest_form, validate_rule
from .project import prepare as prepare_project
from .triggers import KINDS, SCHEDULER_KINDS, SNAPSHOT_NEEDS

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "PLAIN",
    "SCHEDULER_KINDS",
    "SNAPSHOT_NEEDS",
    "ConditionResult",
    "EditIntent",
    "Evaluation",
    "Intent",
    "NotifyIntent",
    "OutboundIntent",
    "Rule",
    "RuleInvalid",
    "TextFormat",
    "evaluate",
    "prepare_project",
    "rule_json",
    "to_document_form",
    "to_rest_form",
    "validate_rule",
]
