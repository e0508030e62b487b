"""Evals that grow (``posttrain grow``): a generator model writes verified variants of an eval.

From the eval's items a generator model writes *cousins* (``paraphrase``: the same question in
other words, the same reference), *harder variants* (``harder``: composition, distractors,
stricter constraints; a new reference) and *new items* for thin tags (``new``). No generated
reference is trusted: each item is verified (``core``), near duplicates of existing items are
removed (``posttrain.usage.dedup``), and the survivors are written with the original items as a
new version of the eval (``write``), each carrying its provenance (seed item, kind, generator,
verification). ``prompts`` holds the generator's requests and the parsing of its replies.

Every model call (generator, solvers, judge) is a run through the runner, stored and cached
like an eval's: an interrupted ``grow`` resumes, a repeated one costs nothing.
"""
