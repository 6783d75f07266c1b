"""Stock on hand per SKU: what the checkout workflow's inventory step reserves from (a demo table)."""

from sqlmodel import Field, SQLModel


class StockItem(SQLModel, table=True):
    __tablename__ = "stock_items"

    sku: str = Field(primary_key=True, max_length=64)
    on_hand: int = 0
