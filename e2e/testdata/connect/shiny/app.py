from shiny import App, render, ui

app_ui = ui.page_fluid(ui.h1("Hello from Shiny"), ui.output_text("greeting"))


def server(input, output, session):
    @render.text
    def greeting():
        return "Served by Atrium Connect."


app = App(app_ui, server)
