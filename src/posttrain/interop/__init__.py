"""Import and export: OpenAI Evals (evals, runs, output items), fine-tuning job files, grader-run
answers. One job per module; nothing here is imported at start-up."""
