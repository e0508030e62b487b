"""Usage: logs and feedback turned into evals (ingest, redaction, dedup, themes), votes and reviews."""
