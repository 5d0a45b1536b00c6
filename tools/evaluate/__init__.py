"""Evaluation: is the tuned model better than the base, in numbers and side by side."""
