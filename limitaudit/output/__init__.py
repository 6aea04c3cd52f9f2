"""Where results become text: tables, CSV and JSON on a stream, and result files."""
