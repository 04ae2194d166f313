"""The operator's tools: history, restore, maintenance, manifests and change feeds (`catalog`), erasure (`forget`, `purge`)."""
