"""`bulk export`: complete list walks, typed tables, the resumable exporter."""
