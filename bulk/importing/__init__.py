"""`bulk import`: sources to text records, cells to values, the plan, the passes, reports."""
