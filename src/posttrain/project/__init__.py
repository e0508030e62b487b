"""A project's evals as one set: the project file (``posttrain.yaml``), ``posttrain check`` (a new
model against production, one verdict) and its reports (text, Markdown, JUnit XML).

Layer: above ``api``/``analysis``/``runner`` (it runs evals and compares runs), beside ``train``
and ``usage``; only ``cli`` (and ``web``/``interop`` above it) may import it.
"""
