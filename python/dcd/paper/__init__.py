"""The paper's tables: how each row is reproduced and the report that puts our numbers beside them."""
