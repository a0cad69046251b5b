import panel as pn

pn.panel("# Hello from Panel").servable(title="Hello from Panel")
