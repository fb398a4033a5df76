"""``leanlake demo``: the whole loop on an embedded S3, no account needed (policy and data ship here)."""
