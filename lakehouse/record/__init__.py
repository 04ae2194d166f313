"""The record of what landed: the landing zone listed against bronze, batches of new files, bronze parsing.

`landing` compares the landing zone with `bronze.landed_files` (the landed-files index) and plans batches;
`ingest` writes each batch into bronze exactly once; `bronze` parses and quarantines rows (pure).
"""
