"""Words: what the numbers say, in one wording. The fourth step of the one-way flow.

:mod:`~pipeline.words.questions` holds the one list of docs/protocol.md's questions that both
``reports/report.md`` (one run) and ``reports/paper.md`` (the table) answer; :mod:`~pipeline.words.tables`
their tables, :mod:`~pipeline.words.lines` the lines around them, :mod:`~pipeline.words.published` the
published numbers they are set beside, :mod:`~pipeline.words.format` the number formats. Every row name
comes from the roles table (:meth:`pipeline.roles.Evaluation.title`); :mod:`pipeline.documents` writes
the files.
"""
