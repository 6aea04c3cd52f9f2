"""One module per command: each computes and returns a result object, and never prints."""
