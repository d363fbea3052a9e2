"""Names of the files more than one layer reads or writes: what the FLARE adapters write into a
job's server workspace (read by ``consortium job submit`` and the reports), and the files of a kit
that the sites' adapters load (written by provisioning)."""

PROGRESS_FILE = "progress.jsonl"
TRAINING_STATUS_FILE = "training_status.json"  # {"status": "completed" | "stopped", "round", "reason"?}
HE_SIGNATURE_FILE = "consortium_he_signature.json"  # in a distributed kit's startup/: signs its HE contexts
