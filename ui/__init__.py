"""The Gradio app. No model code: it drives the assistant's chat session."""
