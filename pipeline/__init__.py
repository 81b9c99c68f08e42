"""Label Assisted Distillation (LAD) for semantic segmentation: the importable library.

Importing this package has no side effects; stages in ``stages/`` are the only code that reads
``params.yaml`` and touches the file system layout of the project.
"""

__version__ = "0.1.0"
