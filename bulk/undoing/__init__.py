"""`bulk undo`: revert what the imports of a checkpoint did (`undoer`), with its state in the
checkpoint (`ledger`) and its summary and plan (`reports`)."""
