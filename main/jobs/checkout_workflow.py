"""The e-commerce checkout as a workflow: validate the cart -> charge the payment -> (update the inventory, create
the order) -> send the confirmation. The payment gateway times out on a charge's first attempt (the step retries
on its own); the inventory step fails for good when the SKU is out of stock, which fails the run and leaves the
confirmation unsent, until the stock is fixed and the failed step retried (`jobqueue jobs retry ID`)."""

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, Field
from sqlmodel import Session

from main.base.jobs import BaseJob, NonRetryableError, job
from main.db.entities.stock import StockItem
from main.workflows.definition import Step, Workflow


class CheckoutOrder(BaseModel):
    order_ref: str = Field(min_length=1, max_length=64)
    email: str
    sku: str
    quantity: int = Field(gt=0)
    amount_cents: int = Field(gt=0)


class Charge(BaseModel):
    order_ref: str
    amount_cents: int


class Reservation(BaseModel):
    order_ref: str
    sku: str
    quantity: int


class Confirmation(BaseModel):
    email: str
    order_ref: str
    charge_id: str
    order_id: str


class PaymentGatewayTimeout(Exception):
    """The gateway did not answer; trying again later may work."""


@job(name="ValidateCartJob", max_retries=0)
class ValidateCartJob(BaseJob[CheckoutOrder]):
    async def perform(self, payload: CheckoutOrder) -> dict[str, Any]:
        return {"total_cents": payload.amount_cents, "lines": 1}


@job(name="ChargePaymentJob", max_retries=3, backoff="fixed", base_delay=0.2)
class ChargePaymentJob(BaseJob[Charge]):
    async def perform(self, payload: Charge) -> dict[str, Any]:
        if self.context.attempt == 1:
            raise PaymentGatewayTimeout(f"charging {payload.amount_cents} cents for {payload.order_ref}: timed out")
        return {"charge_id": f"ch_{payload.order_ref}"}


@job(name="UpdateInventoryJob", max_retries=0)
class UpdateInventoryJob(BaseJob[Reservation]):
    async def perform(self, payload: Reservation) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self._reserve, payload)

    @staticmethod
    def _reserve(payload: Reservation) -> dict[str, Any]:
        from main.services.job_queue import get_job_queue

        with get_job_queue().database.transaction() as session:
            item = _stock(session, payload.sku)
            if item.on_hand < payload.quantity:
                raise NonRetryableError(f"{payload.sku} is out of stock ({item.on_hand} on hand, "
                                        f"{payload.quantity} ordered)")
            item.on_hand -= payload.quantity
            return {"sku": payload.sku, "left": item.on_hand}


def _stock(session: Session, sku: str) -> StockItem:
    return session.get(StockItem, sku, with_for_update=True) or StockItem(sku=sku, on_hand=0)


@job(name="CreateOrderJob", max_retries=2)
class CreateOrderJob(BaseJob[CheckoutOrder]):
    async def perform(self, payload: CheckoutOrder) -> dict[str, Any]:
        return {"order_id": f"ord_{payload.order_ref}"}


@job(name="SendConfirmationJob", max_retries=3)
class SendConfirmationJob(BaseJob[Confirmation]):
    async def perform(self, payload: Confirmation) -> dict[str, Any]:
        self.context.log.info("confirmation_sent", to=payload.email, order_id=payload.order_id)
        return {"sent_to": payload.email}


class ProcessOrder(Workflow[CheckoutOrder]):
    namespace, name, version = "shop", "process_order", "1.0.0"
    steps = [
        Step(ValidateCartJob, name="validate_cart"),
        Step(ChargePaymentJob, name="charge_payment", after=["validate_cart"],
             payload=lambda order, results: Charge(order_ref=order.order_ref,
                                                   amount_cents=results["validate_cart"]["total_cents"])),
        Step(UpdateInventoryJob, name="update_inventory", after=["charge_payment"],
             payload=lambda order, results: Reservation(order_ref=order.order_ref, sku=order.sku,
                                                        quantity=order.quantity)),
        Step(CreateOrderJob, name="create_order", after=["charge_payment"]),
        Step(SendConfirmationJob, name="send_confirmation", after=["update_inventory", "create_order"],
             payload=lambda order, results: Confirmation(
                 email=order.email, order_ref=order.order_ref, charge_id=f"ch_{order.order_ref}",
                 order_id=results["create_order"]["order_id"])),
    ]


CHECKOUT_JOBS = [ValidateCartJob, ChargePaymentJob, UpdateInventoryJob, CreateOrderJob, SendConfirmationJob]
