"""Prompt optimization and model migration for an eval (``posttrain optimize`` / ``migrate``).

``search``: structural rewrites and reflective (GEPA-style) proposals on a dev split, a Pareto
set over tags, one paired acceptance test on a held-out split. ``write``: the winner as a new
named variant with provenance in the eval file, the user's prompt untouched. ``migrate``: old
model and prompt versus the new model with the current and the optimized prompt, one verdict.
Every candidate runs through the runner (store, cache, resume).
"""
