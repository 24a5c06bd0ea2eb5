"""Writes training data to disk; the scene world itself lives in scenes/.

    scene_dataset     rendered scene datasets: PNGs, one JSONL index per split, a contact sheet
    scene_chats       scene chats for stage 0, 1 and 2 (captions, questions, drawings, declines)
    instruct*         the GPT-assisted instruction generator (LLaVA-Instruct style) and its prompts/records
    teachers          its backends: an OpenAI-compatible server, a local GGUF LLM, an oracle
    faithfulness      checks a teacher's claims against the scene
    degrade, parser_report, contact_sheet   the parser's robustness report and sheets of pictures

It imports scenes and nothing else of Glyph's: its output is files that training reads.
"""
