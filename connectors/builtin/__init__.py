"""Built-in connectors: file source/sink and SQLite source/sink."""
