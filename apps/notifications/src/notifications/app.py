"""Placeholder until the subscriber lands: exposes the routes the Triggers target."""

from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/events/notifications", status_code=202)
    async def notifications() -> Response:
        return Response(status_code=202)

    @app.post("/events/loggings", status_code=202)
    async def loggings() -> Response:
        return Response(status_code=202)

    @app.post("/events/dead-letters", status_code=202)
    async def dead_letters() -> Response:
        return Response(status_code=202)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(status_code=200)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(status_code=200)

    return app
