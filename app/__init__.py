"""Referee: the service, the CLI, storage and labeling use cases."""
