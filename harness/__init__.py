"""R1-style reasoning harness: tasks, verifiers, evaluation, training backends, leaderboards."""

__version__ = "0.1.0"
