import gradio as gr


def greet(name):
    return "Hello " + name + " from Gradio"


demo = gr.Interface(fn=greet, inputs="text", outputs="text", title="Hello from Gradio", api_name="greet")

if __name__ == "__main__":
    demo.launch()
