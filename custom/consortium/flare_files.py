"""Names of files the FLARE adapters write into a job's server workspace (shared with the CLI)."""

PROGRESS_FILE = "progress.jsonl"
