"""Evaluation: safe rate, over-refusal, citation validity, general capability and the
before/after report (see docs/evaluation.md)."""
