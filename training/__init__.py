"""Training: stage 0 (the VQ-VAE, CLIP and LM), stage 1 alignment, stage 2 instruction tuning, evaluation, builds.

Every trainer keeps only its model, its batch and its loss; what they share lives once:

    run.py        the run in --out: overwrite and resume, atomic checkpoints, log rows, Ctrl+C, --stop-after
    harness.py    the options every trainer has, the accelerator, when checkpoints are saved
    schedule.py   AdamW and the warm-up + cosine schedule
    batches.py    which examples form step s's batch, fixed by (seed, s)
    chat_data.py  the one chat reader, tokenizer pass and collate of stages 0, 1 and 2
    checkpoint.py checkpoints, and staged_directory: a directory written whole or not at all

It builds on assistant and scenes; neither imports it.
"""
