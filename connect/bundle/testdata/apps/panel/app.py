import panel as pn

pn.panel("hello").servable()
