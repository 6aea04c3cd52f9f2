"""The vocabulary every layer shares: the dump and its tables, an audit's options, facts,
causes and columns, and how times and amounts are written. No I/O here."""
