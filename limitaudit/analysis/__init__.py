"""From a read dump to verdicts: replay each user's ledger, match rows to the records behind
them, take the dump-wide facts, attribute each zeroing and write its evidence."""
