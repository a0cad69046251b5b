from shiny import App, ui

app_ui = ui.page_fluid("hello")
app = App(app_ui, None)
