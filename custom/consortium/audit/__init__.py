"""The site's tamper-evident audit trail: a hash-chained JSON Lines file, its verifier, and the
content digest of what a site receives and releases. No FLARE imports here."""
