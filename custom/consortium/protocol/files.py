"""Names of files the FLARE adapters write into a job's server workspace (shared with the CLI)."""

PROGRESS_FILE = "progress.jsonl"
TRAINING_STATUS_FILE = "training_status.json"  # {"status": "completed" | "stopped", "round", "reason"?}
