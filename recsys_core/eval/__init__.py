"""Evaluation: metrics, the full-ranking evaluator, segments and significance."""
from recsys_core.eval.evaluator import EvalResult, evaluate
from recsys_core.eval.segments import by_activity, segment_summary
from recsys_core.eval.significance import paired_bootstrap

__all__ = ["EvalResult", "by_activity", "evaluate", "paired_bootstrap", "segment_summary"]
