"""Commands that are no DVC stage: ``python -m commands.paper`` (the paper's table as DVC experiments) and
``python -m commands.sync`` (upload what stages journaled during a tracker outage)."""
