"""Label Assisted Distillation (LAD) for semantic segmentation: the importable library.

Importing this package has no side effects; stages in ``stages/`` are the only code that reads
``params.yaml`` and touches the file system layout of the project.
"""

__version__ = "0.1.0"

# The version of what the stages compute. Bump it in a change that alters any trained weight or score (the
# collected shards of the paper's table then go stale and rerun); a change that keeps the default run's
# weights tensor for tensor (benchmarks/same_weights.py) keeps it. docs/protocol.md, "When a shard is current".
NUMERICS = 1
