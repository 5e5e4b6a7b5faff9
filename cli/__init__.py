"""The ``radbill`` command: configuration, the composition root, operator commands."""
