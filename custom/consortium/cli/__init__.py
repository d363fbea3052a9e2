"""The `consortium` command line: POC lifecycle, job validation and submission, reports."""
