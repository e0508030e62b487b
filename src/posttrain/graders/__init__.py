"""Graders: the OpenAI grader format run locally, plus our extensions; also RFT rewards.

Each grader type registers itself with ``@register_grader("type")`` (``posttrain.plugins``);
suites keep their own graders next to them (``posttrain.suites.<name>.grader``).
"""

from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.decorators import grader
from posttrain.graders.registry import build_grader

__all__ = ["Grader", "GraderContext", "build_grader", "grader"]
