"""A pretrained regime without natural images: formula-driven pretraining data (:mod:`~pipeline.pretraining.fractal`).

Kept apart from :mod:`pipeline.data` so that only the stage that pretrains depends on it (a stage's DVC
``deps`` are exactly the project code it imports).
"""
