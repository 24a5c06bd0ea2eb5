"""Speed and memory against the plain Hugging Face way, measured side by side in one run.

    bench.py        `glyph bench`: the workloads (workloads.py) on both sides, timed by measure.py
    reference.py    the plain way: LLaVA + peft + generate() on the same weights
    report.py       RESULTS.md and RESULTS.png; floors.py the memory-bandwidth floors they are set against
    sizes.py        a config's parameter counts from its shapes alone (floors on paper for real sizes)
    instruct_concurrency.py  the instruction generator's concurrency, against fake_openai.py (a local fake server)

It may import anything of Glyph's; nothing imports it but its own tests.
"""
