"""Declaring a workflow: a named, versioned graph of steps, each a job class that runs after the steps it depends on.

    class ProcessOrder(Workflow[Order]):
        namespace, name, version = "payments", "process_order", "2.1.0"
        steps = [
            Step(ValidateCart),
            Step(ChargePayment, after=[ValidateCart], payload=lambda order, results: {...}),
            Step(UpdateInventory, after=[ChargePayment]),
            Step(CreateOrder, after=[ChargePayment]),
            Step(SendConfirmation, after=[UpdateInventory, CreateOrder]),
        ]

A step with `each=` fans out: it runs its job once per payload that `each` returns, as a batch, in parallel on any
workers, and completes when they all have (its result: their results, in order); one that fails after its retries
fails the step.

A definition is checked when its class is created: a step named twice, a dependency on a step the workflow does
not have, a cycle, a bad name or version fail at once, naming the workflow and the step.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import BaseModel

from main.base.jobs import BaseJob
from main.errors import JobDefinitionError

I = TypeVar("I", bound=BaseModel)  # noqa: E741  (the workflow's input model)
PayloadBuilder = Callable[[Any, Mapping[str, Any]], Any]  # (the run's input, results of the steps it waits for)
PayloadsBuilder = Callable[[Any, Mapping[str, Any]], Iterable[Any]]  # the same, for a step that fans out

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


@dataclass(frozen=True)
class Step:
    """A job class as a step: `after` the steps it waits for (their job classes or step names); `payload` builds
    its payload from the run's input and those steps' results (default: the input as it is); `each`, instead,
    builds several: the step fans out to a batch of its job, one per payload; `name` defaults to the job's name."""

    job: type[BaseJob[Any]]
    after: Sequence[type[BaseJob[Any]] | str] = ()
    payload: PayloadBuilder | None = None
    name: str | None = None
    each: PayloadsBuilder | None = None

    @property
    def step_name(self) -> str:
        return self.name or self.job._options().name

    def build_payload(self, run_input: Any, results: Mapping[str, Any]) -> Any:
        return run_input if self.payload is None else self.payload(run_input, results)

    def build_payloads(self, run_input: Any, results: Mapping[str, Any]) -> list[Any]:
        """The payloads of a step that fans out."""
        assert self.each is not None
        payloads = self.each(run_input, results)
        if isinstance(payloads, str | bytes | Mapping) or not isinstance(payloads, Iterable):
            raise TypeError(f"each= of step {self.step_name!r} must return a list of payloads, got "
                            f"{type(payloads).__name__}")
        return list(payloads)


class Workflow(Generic[I]):
    """Subclass with `namespace`, `name`, `version` (semantic, x.y.z) and `steps`; register it in the
    WORKFLOWS list of the jobs module. A run keeps the version it started with."""

    namespace: ClassVar[str]
    name: ClassVar[str]
    version: ClassVar[str]
    steps: ClassVar[Sequence[Step]]
    input_model: ClassVar[type[BaseModel]]
    graph: ClassVar[dict[str, "Node"]]  # by step name, each after the steps it waits for

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        label = cls.__qualname__
        for attribute in ("namespace", "name", "version", "steps"):
            if not hasattr(cls, attribute):
                raise JobDefinitionError(f"workflow {label} has no {attribute}")
        for attribute in ("namespace", "name"):
            if not isinstance(getattr(cls, attribute), str) or not _NAME.fullmatch(getattr(cls, attribute)):
                raise JobDefinitionError(f"workflow {label}: {attribute} must be 1-63 lowercase letters, digits or _ "
                                         f"starting with a letter, got {getattr(cls, attribute)!r}")
        if not isinstance(cls.version, str) or not _VERSION.fullmatch(cls.version):
            raise JobDefinitionError(f"workflow {cls.key_of()}: version must be semantic (like 2.1.0), got "
                                     f"{cls.version!r}")
        cls.input_model = _input_model(cls)
        cls.graph = ordered_steps(cls.key_of(), cls.steps)

    @classmethod
    async def start(cls, run_input: I | Mapping[str, Any], *, session: Any = None) -> int:
        """Start a run: the run and every step written in one transaction (`session`: the application's).
        Returns the run's id."""
        from main.services.job_queue import get_job_queue

        return await get_job_queue().start_workflow(cls, run_input, session=session)

    @classmethod
    def key_of(cls) -> str:
        """`namespace/name@version`: what a run records, and how it is registered."""
        return f"{cls.namespace}/{cls.name}@{getattr(cls, 'version', '?')}"


def _input_model(cls: type) -> type[BaseModel]:
    for base in getattr(cls, "__orig_bases__", ()):
        if get_origin(base) is Workflow:
            (model,) = get_args(base)
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model
    raise JobDefinitionError(f"workflow {cls.__qualname__} must name its input model: class "
                             f"{cls.__name__}(Workflow[MyInput])")


@dataclass(frozen=True)
class Node:
    """A step in its workflow's graph."""

    step: Step
    depends_on: tuple[str, ...]  # the steps it waits for
    dependents: tuple[str, ...]  # the steps that wait for it


def ordered_steps(workflow: str, steps: Sequence[Step]) -> dict[str, Node]:
    """The steps by name, dependencies first; refuses duplicates, unknown dependencies and cycles."""
    if not isinstance(steps, Sequence) or not steps or not all(isinstance(step, Step) for step in steps):
        raise JobDefinitionError(f"workflow {workflow}: steps must be a non-empty list of Step(...)")
    by_name: dict[str, Step] = {}
    for step in steps:
        if step.each is not None and step.payload is not None:
            raise JobDefinitionError(f"workflow {workflow}: step {step.step_name!r} has both payload= and each=; "
                                     "each= builds the payloads of a step that fans out, payload= the one of a step "
                                     "that runs once")
        if step.step_name in by_name:
            raise JobDefinitionError(f"workflow {workflow}: step {step.step_name!r} is declared twice; give one of "
                                     "them a name=")
        by_name[step.step_name] = step
    depends_on: dict[str, tuple[str, ...]] = {}
    for name, step in by_name.items():
        depends_on[name] = tuple(dict.fromkeys(_dependency_name(workflow, step, dependency)
                                               for dependency in step.after))
        for dependency in depends_on[name]:
            if dependency not in by_name:
                raise JobDefinitionError(f"workflow {workflow}: step {name!r} waits for {dependency!r}, which is "
                                         f"not a step of it (steps: {', '.join(by_name)})")
    order = _topological(workflow, depends_on)
    return {name: Node(by_name[name], depends_on[name],
                       tuple(other for other in order if name in depends_on[other])) for name in order}


def _dependency_name(workflow: str, step: Step, dependency: type[BaseJob[Any]] | str) -> str:
    if isinstance(dependency, str):
        return dependency
    if isinstance(dependency, type) and issubclass(dependency, BaseJob):
        return dependency._options().name
    raise JobDefinitionError(f"workflow {workflow}: step {step.step_name!r} has after={dependency!r}; give job "
                             "classes or step names")


def _topological(workflow: str, depends_on: dict[str, tuple[str, ...]]) -> list[str]:
    """The step names, each after those it waits for; a cycle is named step by step."""
    ordered: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name):], name]
            raise JobDefinitionError(f"workflow {workflow}: steps wait for each other in a cycle: "
                                     f"{' -> '.join(cycle)}")
        visiting.append(name)
        for dependency in depends_on[name]:
            visit(dependency)
        visiting.pop()
        ordered.append(name)

    for name in depends_on:
        visit(name)
    return ordered
