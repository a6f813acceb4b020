"""panoseek.training: expert trajectories and supervised fine-tuning (docs/training.md).

``experts`` (the expert searcher) and ``sight`` (what it may see), ``expert_data`` (playing
it into SFT rows), ``dataset`` and ``sharegpt`` (reading and exporting them), ``collator``,
``curves``, ``malloc`` and ``sft`` (the TRL run), ``cli`` (``panoseek data``/``train``).
"""
