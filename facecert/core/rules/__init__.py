"""The rule registry and the checks behind each rule."""

from facecert.core.rules.registry import RULES, Rule, get_rule

__all__ = ["RULES", "Rule", "get_rule"]
