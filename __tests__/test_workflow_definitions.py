"""Declaring workflows: the graph a definition gives, and the mistakes refused when the class is created."""

import types
from typing import Any

import pytest
from pydantic import BaseModel

from __tests__.support.jobs import EchoJob, FailingJob, NoopJob, RecordJob, SleepJob
from main.errors import JobDefinitionError
from main.workflows.definition import Step, Workflow


class Order(BaseModel):
    order_id: int


def test_a_diamond_is_ordered_dependencies_first_with_its_edges() -> None:
    class Diamond(Workflow[Order]):
        namespace, name, version = "shop", "diamond", "1.0.0"
        steps = [Step(SleepJob, after=[NoopJob, RecordJob]), Step(NoopJob), Step(RecordJob, after=["NoopJob"])]

    assert Diamond.key_of() == "shop/diamond@1.0.0" and Diamond.input_model is Order
    assert list(Diamond.graph) == ["NoopJob", "RecordJob", "SleepJob"]
    assert {name: (node.depends_on, node.dependents) for name, node in Diamond.graph.items()} == {
        "NoopJob": ((), ("RecordJob", "SleepJob")),
        "RecordJob": (("NoopJob",), ("SleepJob",)),
        "SleepJob": (("NoopJob", "RecordJob"), ()),
    }


def test_a_step_builds_its_payload_from_the_input_and_the_results_it_waited_for() -> None:
    step = Step(EchoJob, after=[NoopJob], payload=lambda order, results: {"data": {"n": results["NoopJob"]}})
    assert step.build_payload(Order(order_id=1), {"NoopJob": 7}) == {"data": {"n": 7}}
    assert Step(NoopJob).build_payload(Order(order_id=1), {}) == Order(order_id=1)  # the input as it is


def define(steps: list[Step], **attributes: Any) -> type:
    namespace = {"namespace": "shop", "name": "checkout", "version": "1.2.3", "steps": steps, **attributes}
    return types.new_class("Checkout", (Workflow[Order],), exec_body=lambda body: body.update(namespace))


@pytest.mark.parametrize(("steps", "attributes", "message"), [
    ([Step(NoopJob), Step(NoopJob)], {}, "workflow shop/checkout@1.2.3: step 'NoopJob' is declared twice"),
    ([Step(NoopJob, after=[FailingJob])], {}, "step 'NoopJob' waits for 'FailingJob', which is not a step of it"),
    ([Step(NoopJob, after=["NoopJob"])], {}, "steps wait for each other in a cycle: NoopJob -> NoopJob"),
    ([Step(NoopJob, after=[SleepJob]), Step(SleepJob, after=[RecordJob]), Step(RecordJob, after=[NoopJob])], {},
     "in a cycle: NoopJob -> SleepJob -> RecordJob -> NoopJob"),
    ([], {}, "steps must be a non-empty list of Step(...)"),
    ([Step(NoopJob, after=[42])], {}, "has after=42; give job classes or step names"),  # type: ignore[list-item]
    ([Step(NoopJob)], {"version": "2.1"}, "version must be semantic (like 2.1.0), got '2.1'"),
    ([Step(NoopJob)], {"namespace": "Payments Team"}, "namespace must be 1-63 lowercase letters"),
])
def test_a_bad_definition_is_refused_naming_the_workflow_and_the_step(steps: list[Step], attributes: dict[str, Any],
                                                                      message: str) -> None:
    with pytest.raises(JobDefinitionError) as error:
        define(steps, **attributes)
    assert message in str(error.value)


def test_a_workflow_names_its_input_model() -> None:
    with pytest.raises(JobDefinitionError, match=r"must name its input model: class Untyped\(Workflow\[MyInput\]\)"):
        class Untyped(Workflow):  # type: ignore[type-arg]
            namespace, name, version = "shop", "untyped", "1.0.0"
            steps = [Step(NoopJob)]
