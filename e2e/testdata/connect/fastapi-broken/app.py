from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"hello": "atrium", "version": 2}
