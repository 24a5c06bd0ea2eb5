import os
import tempfile

# Read by gradio and huggingface_hub at import time: keep every test offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="glyph-gradio-"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_assistant(tmp_path_factory):
    """A tiny random-weight assistant saved to disk, as `glyph train instruct` leaves one: its directory."""
    import torch

    from assistant.model import GlyphModel
    from tests.tiny_parts import assistant_config, build_parts

    root = tmp_path_factory.mktemp("tiny-assistant")
    torch.manual_seed(0)
    return GlyphModel.build(assistant_config(build_parts(root))).save_pretrained(root / "assistant")
