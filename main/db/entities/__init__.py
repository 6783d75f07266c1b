from main.db.entities.batch import BatchRow, BatchStatus
from main.db.entities.campaign import CampaignRecipient, EmailCampaign, EmailDelivery
from main.db.entities.job import TERMINAL_STATUSES, Job, JobStatus, UniqueScope
from main.db.entities.processing_log import ProcessingLog
from main.db.entities.queue import QueueRow
from main.db.entities.schedule import ScheduleRow
from main.db.entities.shop import Customer, CustomerReport, Order, OrderStatus
from main.db.entities.stock import StockItem
from main.db.entities.worker import WorkerRow
from main.db.entities.workflow import RunStatus, WorkflowEdge, WorkflowRun

# The demo's tables, created by `jobqueue demo seed`, not by the queue's own schema.
DEMO_TABLES = [
    Customer.__table__, Order.__table__, CustomerReport.__table__, EmailCampaign.__table__,
    CampaignRecipient.__table__, EmailDelivery.__table__, ProcessingLog.__table__, StockItem.__table__,
]

__all__ = ["DEMO_TABLES", "TERMINAL_STATUSES", "BatchRow", "BatchStatus", "CampaignRecipient", "Customer",
           "CustomerReport", "EmailCampaign", "EmailDelivery", "Job", "JobStatus", "Order", "OrderStatus",
           "ProcessingLog", "QueueRow", "RunStatus", "ScheduleRow", "StockItem", "UniqueScope", "WorkerRow",
           "WorkflowEdge", "WorkflowRun"]
