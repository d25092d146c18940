# The article's handler, reconstructed from the description as the benchmark baseline (not shipped).
# Run with plain `uvicorn main:app` as its users would: access log on, logging.info() silenced by the
# WARNING default, every event answered 200 {"message": "ok"} (a failed delivery for the Kafka dispatcher).
import logging

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/events/notifications")
async def notifications(request: Request):
    logging.info(await request.json())
    return {"message": "ok"}


@app.post("/events/loggings")
async def loggings(request: Request):
    logging.info(await request.json())
    return {"message": "ok"}
