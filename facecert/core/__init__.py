"""The engine core: the contract (schemas and catalogue), the rule registry,
the conversation model and the Engine that judges it, the capture readers
and writers, redaction. It imports nothing above it: no peer, no
certification, no CLI (the import contract in pyproject.toml checks it)."""
