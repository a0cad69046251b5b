from dash import Dash, html

app = Dash(__name__)
app.layout = html.Div([html.H1("Hello from Dash")])
