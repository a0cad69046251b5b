import gradio as gr

demo = gr.Interface(fn=lambda s: s, inputs="text", outputs="text")
