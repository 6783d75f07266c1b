"""Resumable long jobs: checkpointed continuation in two styles over one checkpoint store.

Step-based (like Rails' ActiveJob::Continuable): ContinuableJob and ``await self.step(self.some_step)``.
Enumerator-based (like Shopify's job-iteration): IterationJob with build_enumerator and each_iteration.
"""

from main.base.jobs.continuation.checkpoint import (
    DEFAULT_CHECKPOINT_POLICY,
    Checkpoint,
    CheckpointPolicy,
    StepState,
    checkpoint_summary,
)
from main.base.jobs.continuation.continuable_job import ContinuableJob, Step
from main.base.jobs.continuation.enumerators import Enumerator, Enumerators
from main.base.jobs.continuation.iteration_job import IterationJob
from main.base.jobs.continuation.sinks import DbWrite

__all__ = ["DEFAULT_CHECKPOINT_POLICY", "Checkpoint", "CheckpointPolicy", "ContinuableJob", "DbWrite", "Enumerator",
           "Enumerators", "IterationJob", "Step", "StepState", "checkpoint_summary"]
