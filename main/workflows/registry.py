"""The workflows a queue can start and continue, by key, and what the store asks of them: the rows that start a run,
and the payload of a step once the steps it waited for have completed."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from main.base.jobs.base_job import payload_document
from main.errors import JobRegistrationError
from main.services.registry import Registry
from main.workflows.definition import Workflow


@dataclass(frozen=True)
class PlannedStep:
    """A step's job as a run starts: due now (`payload` given; a list of them for a step that fans out) or blocked
    until `depends_on` have completed."""

    name: str
    type: str
    queue: str
    priority: int
    max_retries: int
    payload: str | list[str] | None  # the JSON document(s) of a step that waits for nothing; the others get theirs
    # when released
    depends_on: tuple[str, ...]


class Workflows:
    def __init__(self, jobs: Registry) -> None:
        self.jobs = jobs
        self._by_key: dict[str, type[Workflow[Any]]] = {}

    def register(self, workflow: type[Workflow[Any]]) -> None:
        """Every step's job must be registered too; one class per namespace/name@version. Twice is harmless."""
        if not (isinstance(workflow, type) and issubclass(workflow, Workflow) and hasattr(workflow, "graph")):
            raise JobRegistrationError(f"WORKFLOWS holds {workflow!r:.80}, which is not a Workflow subclass")
        key = workflow.key_of()
        for name, node in workflow.graph.items():
            job = node.step.job
            if self.jobs.get(job._options().name) is not job:
                raise JobRegistrationError(f"workflow {key}: the job of step {name!r}, {job.__qualname__}, is not "
                                           f"registered (add it to the JOBS list in {self.jobs.jobs_module})")
        existing = self._by_key.setdefault(key, workflow)
        if existing is not workflow:
            raise JobRegistrationError(f"two workflows are {key}: {existing.__qualname__} and "
                                       f"{workflow.__qualname__}; a changed workflow needs a new version")

    def get(self, key: str) -> type[Workflow[Any]]:
        if key not in self._by_key:
            raise JobRegistrationError(f"no workflow {key} is registered here (registered: "
                                       f"{', '.join(sorted(self._by_key)) or 'none'}); runs of a version finish only "
                                       "where that version is registered")
        return self._by_key[key]

    def keys(self) -> list[str]:
        return sorted(self._by_key)

    def plan(self, workflow: type[Workflow[Any]], run_input: Any) -> list[PlannedStep]:
        """The steps' jobs, dependencies first; those that wait for nothing get their payload (validated) now."""
        planned = []
        for name, node in workflow.graph.items():
            options = node.step.job._options()
            payload = None
            if not node.depends_on:
                payload = self._document(workflow, name, run_input, {})
            planned.append(PlannedStep(name, options.name, options.queue, options.priority, options.max_retries,
                                       payload, node.depends_on))
        return planned

    def step_payload(self, key: str, step: str, run_input: Mapping[str, Any],
                     results: Mapping[str, Any]) -> str | list[str]:
        """The payload of `step` of a run of `key` (those of its batch, if it fans out), from the run's input and
        the results of the steps it waited for; raises what building or validating it raises (the step then
        fails, naming why)."""
        workflow = self.get(key)
        return self._document(workflow, step, workflow.input_model.model_validate(run_input), results)

    @staticmethod
    def _document(workflow: type[Workflow[Any]], step: str, run_input: Any,
                  results: Mapping[str, Any]) -> str | list[str]:
        """Built by the step's builder from the input and its dependencies' results (each as its job's result
        model, where the job declares one), validated by the step's job."""
        node = workflow.graph[step]
        typed = {}
        for name in node.depends_on:
            dependency = workflow.graph[name].step
            model, value = dependency.job._options().result, results.get(name)
            if model is None or value is None:
                typed[name] = value
            elif dependency.each is not None:  # it fanned out: the results of its batch's jobs, in order
                typed[name] = [None if item is None else model.model_validate(item) for item in value]
            else:
                typed[name] = model.model_validate(value)
        if node.step.each is not None:
            return [payload_document(node.step.job, payload) for payload in node.step.build_payloads(run_input, typed)]
        return payload_document(node.step.job, node.step.build_payload(run_input, typed))


def run_input_document(workflow: type[Workflow[Any]], run_input: Any) -> str:
    """The run's input, validated by the workflow's model, as stored."""
    return json.dumps(workflow.input_model.model_validate(run_input).model_dump(mode="json"))
