"""The three surfaces over the assistant library: the Gradio app (app.py, chat_tab.py), the terminal chat
(terminal.py) and the OpenAI-compatible HTTP server (server.py, reading requests in api_requests.py and writing
replies in api_responses.py). They share one loader (loader.py) and one sampling form (sampling_form.py). No model
code: each drives assistant.chat.ChatSession.
"""
